/**
 * Renders migration reports as one self-contained HTML page: a summary table per migration, an SVG
 * timeline of its phases with the downtime window shaded, a bar chart of bytes per pre-copy iteration,
 * the downtime split into its parts, and the raw JSON. No scripts, no external resources.
 */
import type { MigrationReport } from "./report.ts";

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

const PHASE_COLORS: Record<string, string> = {
  setup: "#9aa5b1",
  "destination-prepared": "#7b8794",
  precopy: "#4c9aff",
  converged: "#36b37e",
  "vcpus-paused": "#ff5630",
  "device-stopped": "#ff7452",
  "device-data-sent": "#ffab00",
  "final-ram-sent": "#ffc400",
  "destination-running": "#00b8d9",
  "vcpus-running": "#6554c0",
  "source-cleaned": "#8777d9",
  completed: "#36b37e",
  "rolled-back": "#de350b",
};

/** The phase timeline: one segment per phase, the downtime window outlined. */
export function timelineSvg(r: MigrationReport, width = 880): string {
  const h = 90;
  const left = 10;
  const w = width - 20;
  const total = Math.max(r.totalMs, 0.001);
  const x = (ms: number) => left + (ms / total) * w;
  const parts: string[] = [];
  const ph = r.phases;
  for (let i = 0; i < ph.length; i++) {
    const a = ph[i]!;
    const b = ph[i + 1]?.atMs ?? r.totalMs;
    const color = PHASE_COLORS[a.phase] ?? "#ccc";
    const x0 = x(a.atMs);
    const x1 = Math.max(x(b), x0 + 1);
    parts.push(
      `<rect x="${x0.toFixed(2)}" y="20" width="${(x1 - x0).toFixed(2)}" height="30" fill="${color}"><title>${esc(a.phase)}: ${a.atMs.toFixed(3)} ms → ${b.toFixed(3)} ms</title></rect>`,
    );
  }
  const paused = ph.find((p) => p.phase === "vcpus-paused");
  const running = ph.find((p) => p.phase === "vcpus-running");
  if (paused !== undefined && running !== undefined) {
    const x0 = x(paused.atMs - r.downtime.vcpuPauseMs);
    const x1 = Math.max(x(running.atMs), x0 + 2);
    parts.push(
      `<rect x="${x0.toFixed(2)}" y="14" width="${(x1 - x0).toFixed(2)}" height="42" fill="none" stroke="#de350b" stroke-width="2"><title>downtime ${r.downtimeMs.toFixed(3)} ms</title></rect>`,
      `<text x="${Math.min(x1 + 4, width - 150).toFixed(2)}" y="12" font-size="11" fill="#de350b">downtime ${r.downtimeMs.toFixed(2)} ms</text>`,
    );
  }
  for (const it of r.iterations) {
    const xi = x(it.startMs);
    parts.push(`<line x1="${xi.toFixed(2)}" y1="50" x2="${xi.toFixed(2)}" y2="58" stroke="#333"/>`);
  }
  parts.push(`<text x="${left}" y="74" font-size="11">0 ms</text>`);
  parts.push(
    `<text x="${width - 10}" y="74" font-size="11" text-anchor="end">${r.totalMs.toFixed(1)} ms</text>`,
  );
  const names = [...new Set(ph.map((p) => p.phase))];
  const perRow = 6;
  const legend = names
    .map((p, i) => {
      const lx = left + (i % perRow) * 145;
      const ly = h - 8 + Math.floor(i / perRow) * 14;
      return `<rect x="${lx}" y="${ly}" width="10" height="10" fill="${PHASE_COLORS[p] ?? "#ccc"}"/><text x="${lx + 14}" y="${ly + 9}" font-size="10">${esc(p)}</text>`;
    })
    .join("");
  const legendRows = Math.ceil(names.length / perRow);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h + 10 + legendRows * 14}" role="img" aria-label="migration timeline">${parts.join("")}${legend}</svg>`;
}

/** Bytes per pre-copy iteration (RAM and device data stacked). */
export function iterationsSvg(r: MigrationReport, width = 880): string {
  const h = 120;
  const its = r.iterations;
  if (its.length === 0) return "";
  const max = Math.max(...its.map((i) => i.ramBytes + i.deviceBytes), 1);
  const bw = Math.min(60, (width - 40) / its.length - 4);
  const bars = its
    .map((it, i) => {
      const x = 30 + i * (bw + 4);
      const hr = (it.ramBytes / max) * (h - 30);
      const hd = (it.deviceBytes / max) * (h - 30);
      return (
        `<rect x="${x}" y="${h - 15 - hr}" width="${bw}" height="${hr}" fill="#4c9aff"><title>iteration ${i}: RAM ${fmtBytes(it.ramBytes)}, dirty rate ${it.dirtyRatePagesPerSec} pages/s, expected downtime ${it.expectedDowntimeMs} ms</title></rect>` +
        `<rect x="${x}" y="${h - 15 - hr - hd}" width="${bw}" height="${hd}" fill="#ffab00"><title>iteration ${i}: device ${fmtBytes(it.deviceBytes)}</title></rect>` +
        `<text x="${x + bw / 2}" y="${h - 2}" font-size="10" text-anchor="middle">${i}</text>`
      );
    })
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" role="img" aria-label="bytes per iteration"><text x="0" y="10" font-size="10">${fmtBytes(max)}</text>${bars}</svg>`;
}

function summary(r: MigrationReport): string {
  const rows: [string, string][] = [
    ["result", r.result + (r.error ? ` — ${r.error.code} in ${r.error.phase}: ${r.error.message}` : "")],
    ["path", r.path],
    ["function", r.functionLabel],
    ["storage / profile", `${r.storage} / ${r.profile}`],
    [
      "downtime",
      `${r.downtimeMs.toFixed(3)} ms (limit ${r.maxDowntimeMs} ms${r.converged ? "" : ", did not converge"})`,
    ],
    ["device downtime", `${r.deviceDowntimeMs.toFixed(3)} ms`],
    ["total time", `${r.totalMs.toFixed(1)} ms`],
    ["pre-copy iterations", String(r.precopyIterations)],
    [
      "bytes moved",
      `${fmtBytes(r.bytesTransferred)} (RAM ${fmtBytes(r.ramBytesTransferred)}, device ${fmtBytes(r.deviceBytesTransferred)}, namespace ${fmtBytes(r.namespaceBytesTransferred)})`,
    ],
    ["stop-copy device state", fmtBytes(r.stateBytes)],
  ];
  const d = r.downtime;
  const split: [string, number][] = [
    ["vCPU pause", d.vcpuPauseMs],
    ["device stop (suspend + state read)", d.deviceStopMs],
    ["device data", d.deviceDataMs],
    ["final dirty RAM", d.finalRamMs],
    ["device resume (set state + resume)", d.deviceResumeMs],
    ["vCPU start", d.vcpuStartMs],
  ];
  return (
    `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>` +
    `<h3>Downtime split</h3><table>${split.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v.toFixed(3)} ms</td></tr>`).join("")}</table>`
  );
}

export function renderHtmlReport(
  title: string,
  reports: readonly MigrationReport[],
  extra?: Record<string, unknown>,
): string {
  const sections = reports
    .map(
      (r, i) =>
        `<section><h2>Migration ${i + 1}: ${esc(r.path)}</h2>${summary(r)}<h3>Timeline</h3>${timelineSvg(r)}<h3>Pre-copy iterations</h3>${iterationsSvg(r)}<details><summary>report JSON</summary><pre>${esc(JSON.stringify(r, null, 2))}</pre></details></section>`,
    )
    .join("\n");
  const extraHtml =
    extra === undefined
      ? ""
      : `<section><h2>Run</h2><pre>${esc(JSON.stringify(extra, null, 2))}</pre></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:960px}table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f5f7;font-weight:600}section{margin-bottom:32px}pre{background:#f4f5f7;padding:8px;overflow:auto;font-size:12px}</style>
</head><body><h1>${esc(title)}</h1>${extraHtml}${sections}</body></html>
`;
}
