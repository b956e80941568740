import { readFileSync } from "node:fs";
import client from "prom-client";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { DaemonMetrics } from "../../src/observe/metrics.js";
import { PHASES } from "../../src/replication/phase.js";

/**
 * The Grafana dashboard and the Prometheus alert rules in monitoring/ query
 * only what the daemon exports: the metrics are read from the daemon's own
 * registry (name, type, and labels besides the target's), after the events
 * and live numbers of a running daemon have set every series. Prometheus'
 * promtool checks the PromQL itself and runs the alerts' tests
 * (monitoring/check).
 */
async function daemonMetrics(): Promise<Record<string, { type: string; labels: string[] }>> {
  const m = new DaemonMetrics();
  const ev = m.events();
  ev.applied?.(10, 0.01);
  ev.error?.("SQLSTATE_23514");
  ev.freeze?.(12, true);
  ev.cutoverAttempt?.();
  m.update({
    role: "active",
    phase: "snapshot",
    applied_seq: 1,
    newest_seq: 2,
    lag_changes: 1,
    lag_seconds: 0.5,
    apply_rate: 3,
    last_error: null,
    snapshot: [{ table: "users", rows: 5, total: 10, done: false }],
    seconds_since_progress: 0.1,
    frozen_at: null,
    fallback_lag_changes: 3,
    fallback_lag_seconds: 0.2,
  });
  const out: Record<string, { type: string; labels: string[] }> = {};
  for (const f of await m.registry.getMetricsAsJSON()) {
    if (!f.name.startsWith("sqlite2pg_")) continue;
    const labels = new Set<string>();
    for (const v of f.values) for (const l of Object.keys(v.labels)) if (l !== "le") labels.add(l);
    out[f.name] = { type: String(f.type), labels: [...labels] };
  }
  return out;
}
const DAEMON_METRICS = await daemonMetrics();
const ROLES = ["active", "standby"];
/** Labels Prometheus adds to every series: the scrape job and target, and the `database` target label the README's scrape configuration sets. */
const TARGET_LABELS = ["job", "instance", "database"];

/** Grafana's reference to the dashboard's data source variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
const DATASOURCE = "${datasource}";

const root = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");

// ---- what a PromQL expression refers to --------------------------------------

interface Refs {
  metrics: string[];
  /** Each selector: the metric and its label matchers. */
  selectors: { metric: string; matchers: { label: string; op: string; value: string }[] }[];
  /** Labels named in by/without/on/ignoring/group_left/group_right lists. */
  grouping: string[];
  /** Functions applied directly to a metric: `rate(x…` gives ["rate", "x"]. */
  applied: [fn: string, metric: string][];
}

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"]);

function promqlRefs(expr: string): Refs {
  const selectors: Refs["selectors"] = [];
  const grouping: string[] = [];
  // Selectors with matchers: metric{a="b", c=~"d"} (or {…} alone).
  let rest = expr.replace(/([A-Za-z_:][\w:]*)?\{([^}]*)\}/g, (_all, metric: string | undefined, body: string) => {
    const matchers = [...body.matchAll(/([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map(([, label, op, value]) => ({
      label: label!,
      op: op!,
      value: value!,
    }));
    selectors.push({ metric: metric ?? "", matchers });
    return metric ?? "";
  });
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, kw: string, labels: string) => {
    grouping.push(
      ...labels
        .split(",")
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return kw;
  });
  rest = rest.replace(/\[[^\]]*\]/g, "").replace(/"(?:[^"\\]|\\.)*"/g, "");
  // Identifiers that name series: not functions or aggregations (followed by "(", or by "by"/"without"), keywords, or an exponent (1e3).
  const names = [...rest.matchAll(/[A-Za-z_:][\w:]*/g)].filter((m) => {
    const after = rest.slice(m.index + m[0].length);
    return !/^\s*(\(|(by|without)\b)/.test(after) && !KEYWORDS.has(m[0]) && !(/^[eE]\d*$/.test(m[0]) && /\d$/.test(rest.slice(0, m.index)));
  });
  const metrics = [...new Set(names.map((m) => m[0]))];
  // The metric a function works on: the first series name after its "(".
  const applied = [...rest.matchAll(/\b(rate|irate|increase|changes|delta|deriv|histogram_quantile)\s*\(/g)].flatMap((f) => {
    const first = names.find((m) => m.index > f.index);
    return first ? [[f[1]!, first[0]] as [string, string]] : [];
  });
  return { metrics, selectors, grouping, applied };
}

// ---- the files ----------------------------------------------------------------

interface Target {
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: { uid?: string }; includeAll?: boolean; multi?: boolean }[] };
}
interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string; runbook_url: string };
}

const dashboard = JSON.parse(read("monitoring/grafana-dashboard.json")) as Dashboard;
const alertsDoc = YAML.parse(read("monitoring/alerts.yml")) as unknown as { groups: { name: string; rules: Rule[] }[] };
const rules = alertsDoc.groups.flatMap((g) => g.rules);
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** prom-client's default process and Node.js metrics, by name, with their types. */
async function defaultMetrics(): Promise<Map<string, string>> {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics = await registry.getMetricsAsJSON();
  registry.clear();
  return new Map(metrics.map((m) => [m.name, String(m.type)]));
}

/** A metric name as exposed, to its family and type: `x_bucket` of a histogram `x` is `x`. */
function family(name: string, types: Map<string, string>): { name: string; type: string; part: string } | null {
  if (types.has(name)) return { name, type: types.get(name)!, part: "" };
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && types.get(m[1]!) === "histogram") return { name: m[1]!, type: "histogram", part: m[2]! };
  return null;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .trim()
    .replace(/\s/g, "-");
}

describe("the PromQL reader", () => {
  it("tells metrics from functions, keywords, labels and durations", () => {
    const r = promqlRefs(
      'histogram_quantile(0.99, sum by (instance, le) (rate(sqlite2pg_apply_batch_duration_seconds_bucket{instance=~"$instance"}[5m]))) > 1e3 and on (job) up{job="x"} == 0',
    );
    expect(r.metrics).toEqual(["sqlite2pg_apply_batch_duration_seconds_bucket", "up"]);
    expect(r.grouping).toEqual(["instance", "le", "job"]);
    expect(r.selectors).toEqual([
      { metric: "sqlite2pg_apply_batch_duration_seconds_bucket", matchers: [{ label: "instance", op: "=~", value: "$instance" }] },
      { metric: "up", matchers: [{ label: "job", op: "=", value: "x" }] },
    ]);
    expect(r.applied).toEqual([
      ["histogram_quantile", "sqlite2pg_apply_batch_duration_seconds_bucket"],
      ["rate", "sqlite2pg_apply_batch_duration_seconds_bucket"],
    ]);
  });
});

describe("monitoring/ queries only what the daemon exports", () => {
  const sources: [file: string, exprs: string[]][] = [
    ["grafana-dashboard.json", dashboardExprs],
    ["alerts.yml", rules.map((r) => r.expr)],
  ];

  it.each(sources)("%s: every metric is the daemon's, prom-client's or Prometheus' `up`", async (_file, exprs) => {
    const defaults = await defaultMetrics();
    const types = new Map<string, string>([...Object.entries(DAEMON_METRICS).map(([n, m]) => [n, m.type] as [string, string]), ...defaults, ["up", "gauge"]]);
    expect(exprs.length).toBeGreaterThan(0);
    for (const expr of exprs) {
      const refs = promqlRefs(expr);
      expect(refs.metrics.length, expr).toBeGreaterThan(0);
      for (const name of refs.metrics) {
        const f = family(name, types);
        expect(f, `${name} in ${expr}`).not.toBeNull();
        // Buckets, sums and counts of histograms only; rate() and increase() of counters and histogram parts only.
        if (f!.type !== "histogram") expect(f!.part, name).toBe("");
        if (f!.type === "histogram") expect(f!.part, `${name}: a histogram is queried by its _bucket, _sum or _count`).not.toBe("");
      }
      for (const [fn, metric] of refs.applied) {
        const f = family(metric, types)!;
        if (fn === "rate" || fn === "increase") expect(f.type === "counter" || f.part !== "", `${fn}(${metric})`).toBe(true);
        if (fn === "histogram_quantile") expect(f.part, `${fn} of ${metric}`).toBe("bucket");
      }
    }
  });

  it.each(sources)("%s: labels are the metric's own or the target's, with values that exist", (_file, exprs) => {
    for (const expr of exprs) {
      const refs = promqlRefs(expr);
      const own = (metric: string) => [
        ...(DAEMON_METRICS[metric.replace(/_(bucket|sum|count)$/, "")]?.labels ?? []),
        ...(metric.endsWith("_bucket") ? ["le"] : []),
      ];
      for (const s of refs.selectors) {
        for (const m of s.matchers) {
          expect([...TARGET_LABELS, ...own(s.metric)], `${s.metric}{${m.label}…} in ${expr}`).toContain(m.label);
          if (m.label === "phase") expect(PHASES, `phase="${m.value}"`).toContain(m.value);
          if (m.label === "role") expect(ROLES, `role="${m.value}"`).toContain(m.value);
        }
      }
      const all = refs.metrics.flatMap(own);
      for (const label of refs.grouping) expect([...TARGET_LABELS, ...all], `${label} in ${expr}`).toContain(label);
    }
  });
});

describe("monitoring/grafana-dashboard.json", () => {
  const panels = dashboard.panels.filter((p) => p.type !== "row");

  it("asks for a Prometheus data source and the daemons to show", () => {
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.datasource).toMatchObject({ type: "datasource", query: "prometheus" });
    expect(vars.instance).toMatchObject({ type: "query", datasource: { uid: DATASOURCE }, includeAll: true, multi: true });
    expect(JSON.stringify(vars.instance!.query)).toMatch(/label_values\(sqlite2pg_\w+, instance\)/);
    expect(dashboard.uid).toBe("sqlite2pg");
  });

  it("queries the chosen data source, for the chosen daemons only", () => {
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, p.title).toBe(DATASOURCE);
        for (const s of promqlRefs(t.expr).selectors) {
          expect(s.matchers, `${p.title}: ${t.expr}`).toContainEqual({ label: "instance", op: "=~", value: "$instance" });
        }
      }
    }
  });

  it("lays its panels out without overlaps, each with a unique id", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24, p.title).toBe(true);
      for (let r = y; r < y + h; r++) {
        for (let c = x; c < x + w; c++) {
          expect(cells.has(`${r},${c}`), `${p.title} overlaps at row ${r}, column ${c}`).toBe(false);
          cells.add(`${r},${c}`);
        }
      }
    }
  });

  it("shows lag, throughput, batch duration, snapshot, errors, phase, role, freeze and the process", () => {
    const used = new Set(dashboardExprs.flatMap((e) => promqlRefs(e).metrics));
    for (const name of [
      "sqlite2pg_lag_changes",
      "sqlite2pg_lag_seconds",
      "sqlite2pg_changes_applied_total",
      "sqlite2pg_apply_batch_duration_seconds_bucket",
      "sqlite2pg_snapshot_progress_ratio",
      "sqlite2pg_snapshot_rows_copied",
      "sqlite2pg_snapshot_rows",
      "sqlite2pg_errors_total",
      "sqlite2pg_phase",
      "sqlite2pg_role",
      "sqlite2pg_freeze_duration_seconds_bucket",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect([...used], name).toContain(name);
    }
  });
});

describe("monitoring/alerts.yml", () => {
  const readme = read("README.md");
  const headings = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
  const tests = read("monitoring/alerts.test.yml");

  it("has the alerts the runbook describes", () => {
    expect(rules.map((r) => r.alert)).toEqual([
      "Sqlite2pgDown",
      "Sqlite2pgNotScraped",
      "Sqlite2pgNoActiveDaemon",
      "Sqlite2pgLagHigh",
      "Sqlite2pgFallbackLagHigh",
      "Sqlite2pgApplyFailing",
      "Sqlite2pgSnapshotStalled",
      "Sqlite2pgErrors",
      "Sqlite2pgFrozenTooLong",
      "Sqlite2pgCutoverRetrying",
      "Sqlite2pgRestarting",
    ]);
  });

  it.each(rules.map((r) => [r.alert, r] as const))("%s: severity, summary, description, a runbook section, a promtool test", (name, rule) => {
    expect(rule.expr.trim()).not.toBe("");
    if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smh]$/);
    expect(["critical", "warning"]).toContain(rule.labels.severity);
    expect(rule.annotations.summary.trim()).not.toBe("");
    expect(rule.annotations.description.trim()).not.toBe("");
    const url = /^https:\/\/www\.npmjs\.com\/package\/sqlite2pg#(.+)$/.exec(rule.annotations.runbook_url);
    expect(url?.[1], rule.annotations.runbook_url).toBe(anchor(name));
    expect([...headings], `README.md has no heading for #${url?.[1]}`).toContain(url![1]);
    // monitoring/alerts.test.yml makes it fire at least once (promtool runs it).
    expect(tests).toMatch(new RegExp(`alertname: ${name}\\n\\s+exp_alerts:`));
  });
});
