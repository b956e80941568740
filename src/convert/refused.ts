/** A value that cannot be written to its column, with the reason. */
export class ValueRefused extends Error {
  constructor(
    readonly column: number,
    readonly reason: string,
    readonly value: unknown,
  ) {
    super(reason);
    this.name = "ValueRefused";
  }
}
