// Run a command and measure wall time and peak memory of its whole process tree.
//
// Peak RSS: every ~50 ms we walk /proc to find all descendants of the spawned
// process and sum their VmRSS; the peak of that sum is the tree's peak RSS.
// Short spikes between two samples are caught per process through VmHWM (the
// kernel's own high-water mark), so the reported value is
//   max( max over samples of Σ VmRSS(tree),  max over processes of VmHWM )
// which is a (tight) lower bound of the true peak of the tree. Processes that
// are not descendants (e.g. the Postgres server backends doing the COPY work)
// are not counted.
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// If GNU time is installed, every command is wrapped in `/usr/bin/time -f %M`,
// whose ru_maxrss (exact peak of the largest single process of the tree) also
// feeds the maximum above; the `time` process itself is not counted.
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

function readKb(status, key) {
  const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : 0;
}

function descendants(root) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch { /* process exited meanwhile */ }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

export class TreeSampler {
  constructor(rootPid, { intervalMs = 50, skipRoot = false, skipComm = ['bash', 'sh', 'time'] } = {}) {
    this.root = rootPid;
    this.skipComm = new Set(skipComm); // shells: not part of the tool's own memory
    this.skipRoot = skipRoot;
    this.peakSumKb = 0;
    this.hwm = new Map(); // pid -> { comm, kb }
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }
  sample() {
    let sum = 0;
    for (const pid of descendants(this.root)) {
      if (this.skipRoot && pid === this.root) continue;
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const comm = status.match(/^Name:\s+(.*)$/m)?.[1] ?? '?';
        if (this.skipComm.has(comm)) continue;
        sum += readKb(status, 'VmRSS');
        const hwm = readKb(status, 'VmHWM');
        if (hwm > (this.hwm.get(pid)?.kb ?? 0)) this.hwm.set(pid, { comm, kb: hwm });
      } catch { /* gone */ }
    }
    this.peakSumKb = Math.max(this.peakSumKb, sum);
  }
  stop() {
    clearInterval(this.timer);
    const perProc = [...this.hwm.values()];
    const maxHwm = Math.max(0, ...perProc.map((p) => p.kb));
    // Largest high-water mark per command name, e.g. { psql: 9000, sqlite3: 8000 }.
    const byComm = {};
    for (const p of perProc) byComm[p.comm] = Math.max(byComm[p.comm] ?? 0, p.kb);
    return { peakKb: Math.max(this.peakSumKb, maxHwm), peakSumKb: this.peakSumKb, byComm };
  }
}

// Spawn `cmd args`, stdout+stderr appended to logFile; `skipComm` names the
// commands of the tree not counted (default: shells and `time`). Resolves with
// { code, signal, secs, peakKb, byComm, error }. Never rejects.
export function measure(cmd, args, { cwd, env, logFile, timeoutMs = 0, skipComm } = {}) {
  return new Promise((resolve) => {
    const fd = openSync(logFile, 'a');
    const t0 = performance.now();
    const timeOut = join(tmpdir(), `bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const argv = GNU_TIME ? [GNU_TIME, '-q', '-f', '%M', '-o', timeOut, cmd, ...args] : [cmd, ...args];
    let child;
    try {
      // Own process group, so a timeout or Ctrl-C can stop the whole tree.
      child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', fd, fd], detached: true });
    } catch (error) {
      closeSync(fd);
      resolve({ code: null, secs: 0, peakKb: 0, byComm: {}, error: String(error) });
      return;
    }
    const sampler = child.pid ? new TreeSampler(child.pid, { skipRoot: !!GNU_TIME, ...(skipComm ? { skipComm } : {}) }) : null;
    const killGroup = () => { try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ } };
    const onSigint = () => { killGroup(); process.exit(130); };
    if (child.pid) process.once('SIGINT', onSigint);
    const timer = timeoutMs ? setTimeout(killGroup, timeoutMs) : null;
    let done = false;
    const finish = (code, signal, error) => {
      if (done) return;
      done = true;
      const secs = (performance.now() - t0) / 1000;
      if (timer) clearTimeout(timer);
      process.removeListener('SIGINT', onSigint);
      const mem = sampler ? sampler.stop() : { peakKb: 0, byComm: {} };
      if (GNU_TIME) {
        try {
          const kb = Number(readFileSync(timeOut, 'utf8').trim().split('\n').pop());
          if (kb > 0) { mem.timeMaxKb = kb; mem.peakKb = Math.max(mem.peakKb, kb); }
        } catch { /* time could not write it, e.g. command not found */ }
        rmSync(timeOut, { force: true });
      }
      closeSync(fd);
      resolve({ code, signal, secs, ...mem, error });
    };
    child.on('error', (e) => finish(null, null, String(e)));
    child.on('exit', (code, signal) => { sampler?.sample(); finish(code, signal); });
  });
}
