/**
 * The systemd notification protocol (sd_notify): READY=1, STATUS=…,
 * WATCHDOG=1, STOPPING=1, RELOADING=1, sent to the datagram socket named
 * by $NOTIFY_SOCKET. Without that variable (not under a Type=notify unit)
 * nothing is sent.
 *
 * Node has no AF_UNIX datagram sockets. Messages are sent by systemd's own
 * client, `systemd-notify`, as a child process: no native addon to break
 * with a Node upgrade, and its wire format is systemd's (abstract socket
 * names, credentials). It waits until the manager has read each message
 * (the BARRIER=1 handshake), so a message from the short-lived child is not
 * dropped when the child exits first; the unit needs `NotifyAccess=all`.
 * Children run one at a time, in order; status-only messages waiting to be
 * sent are merged, so a slow manager never builds a queue.
 */
import { spawn } from "node:child_process";
import type { Logger } from "./logger.js";

type Message = Record<string, string>;

/** Sends sd_notify messages; every method is a no-op outside a Type=notify unit. */
export class Notifier {
  readonly enabled: boolean;
  private readonly queue: Message[] = [];
  private sending = false;
  private failedOnce = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly command = "systemd-notify",
  ) {
    this.enabled = Boolean(env.NOTIFY_SOCKET);
  }

  /**
   * The watchdog interval systemd asked for (WatchdogSec=), in ms, when it
   * is meant for this process; null when there is none.
   */
  watchdogMs(): number | null {
    const usec = Number(this.env.WATCHDOG_USEC);
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0) return null;
    const pid = this.env.WATCHDOG_PID;
    if (pid && Number(pid) !== process.pid) return null;
    return usec / 1000;
  }

  ready(status?: string): void {
    this.send(status === undefined ? { READY: "1" } : { READY: "1", STATUS: status });
  }
  status(text: string): void {
    this.send({ STATUS: text });
  }
  watchdog(): void {
    this.send({ WATCHDOG: "1" });
  }
  stopping(status?: string): void {
    this.send(status === undefined ? { STOPPING: "1" } : { STOPPING: "1", STATUS: status });
  }
  reloading(): void {
    this.send({ RELOADING: "1" });
  }

  /** Queue one message. */
  send(m: Message): void {
    if (!this.enabled) return;
    const last = this.queue[this.queue.length - 1];
    const mergeable = (x: Message) => Object.keys(x).every((k) => k === "STATUS" || k === "WATCHDOG");
    if (last && mergeable(last) && mergeable(m)) Object.assign(last, m);
    else this.queue.push({ ...m });
    this.pump();
  }

  /** Resolves once every queued message is sent (or failed). */
  flushed(): Promise<void> {
    if (!this.sending && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    if (this.sending) return;
    const m = this.queue.shift();
    if (!m) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.sending = true;
    // One line per variable, as in the protocol: a STATUS text cannot carry a newline.
    const args = Object.entries(m).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, " ")}`);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(this.command, args, { stdio: ["ignore", "ignore", "pipe"], env: this.env });
    } catch (e) {
      // A synchronous failure (no memory, a bad argument): reported like any other, and the queue goes on.
      this.sending = false;
      if (!this.failedOnce) {
        this.failedOnce = true;
        this.log.error({ err: (e as Error).message }, "could not run systemd-notify");
      }
      queueMicrotask(() => this.pump());
      return;
    }
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    // The barrier waits for the manager; a manager that never answers must not hold the queue.
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    timer.unref();
    let ended = false;
    const done = (problem: string | null) => {
      if (ended) return; // a child that cannot start reports both "error" and "close"
      ended = true;
      clearTimeout(timer);
      if (problem && !this.failedOnce) {
        this.failedOnce = true;
        this.log.error(
          { notify: Object.keys(m).join(","), err: problem },
          "could not notify systemd (NOTIFY_SOCKET is set): is `systemd-notify` installed and does the unit say NotifyAccess=all?",
        );
      }
      this.sending = false;
      this.pump();
    };
    child.once("error", (e) => done(e.message));
    child.once("close", (code, signal) => done(code === 0 ? null : `systemd-notify exited with ${code ?? signal}: ${stderr.trim()}`));
  }
}
