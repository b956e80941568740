/**
 * A real AF_UNIX datagram socket standing in for systemd's notification
 * socket: what a daemon started with NOTIFY_SOCKET=<path> sends (READY=1,
 * STATUS=…, WATCHDOG=1 …) is collected here, one message per datagram.
 * Node has no datagram sockets of this family, so the listener is a small
 * python3 process; file descriptors passed with a message (systemd-notify's
 * BARRIER=1 handshake) are closed at once, which is how the manager
 * answers the barrier.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const LISTENER = `
import json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps({"listening": path}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
    print(json.dumps({"message": data.decode("utf-8", "replace")}), flush=True)
`;

/** One received datagram, as variables. */
export type NotifyMessage = Record<string, string>;

export class NotifySocket {
  readonly path: string;
  readonly messages: NotifyMessage[] = [];
  /** BARRIER=1 handshakes answered (kept apart from the messages). */
  barriers = 0;
  private readonly proc: ChildProcess;
  private readonly dir: string;
  private ready: Promise<void>;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "sqlite2pg-notify-"));
    this.path = join(this.dir, "notify.sock");
    this.proc = spawn("python3", ["-c", LISTENER, this.path], { stdio: ["ignore", "pipe", "pipe"] });
    let buf = "";
    let stderr = "";
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    this.ready = new Promise((resolve, reject) => {
      this.proc.once("exit", (code) => reject(new Error(`the notify listener exited (${code}): ${stderr}`)));
      this.proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = JSON.parse(buf.slice(0, i)) as { listening?: string; message?: string };
          buf = buf.slice(i + 1);
          if (line.listening) resolve();
          if (line.message !== undefined) {
            const m: NotifyMessage = {};
            for (const l of line.message.split("\n")) {
              const eq = l.indexOf("=");
              if (eq > 0) m[l.slice(0, eq)] = l.slice(eq + 1);
            }
            if (m.BARRIER === "1") this.barriers++;
            else this.messages.push(m);
          }
        }
      });
    });
  }

  /** Resolves once the socket is bound. */
  async listening(): Promise<void> {
    await this.ready;
  }

  /** Messages that set `key` (optionally to `value`). */
  with(key: string, value?: string): NotifyMessage[] {
    return this.messages.filter((m) => key in m && (value === undefined || m[key] === value));
  }

  /** Wait for a message matching `pred`, at most `ms`; returns it or throws with what arrived. */
  async waitFor(pred: (m: NotifyMessage) => boolean, ms: number, what: string): Promise<NotifyMessage> {
    const until = Date.now() + ms;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (Date.now() > until) throw new Error(`no ${what} on the notify socket in ${ms} ms; received: ${JSON.stringify(this.messages.slice(-20))}`);
      await sleep(50);
    }
  }

  close(): void {
    this.proc.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
