/**
 * The dashboard's CSS. States carry a text label and a shape of border as well as a colour, so the page
 * reads the same without colour; the palette follows the system's light or dark preference.
 */
export const PAGE_STYLE = `
:root { color-scheme: light dark; --fg: #1b1f23; --bg: #fff; --muted: #5a6270; --line: #d6dae0;
  --ok: #176f2c; --warn: #8a5a00; --bad: #b3261e; --accent: #0b5cad; --row: #f5f7fa; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8eb; --bg: #15181c; --muted: #a0a8b4; --line: #343a42;
    --ok: #6fd08c; --warn: #f0c060; --bad: #ff8a80; --accent: #7ab8ff; --row: #1d2127; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .75rem 1rem;
  border-bottom: 1px solid var(--line); }
h1 { font-size: 1.15rem; margin: 0; }
h2 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
main { padding: 0 1rem 2rem; }
section { overflow-x: auto; }
table { border-collapse: collapse; min-width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: .2rem 0; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.time, td.event, td.num { white-space: nowrap; }
td.error { overflow-wrap: anywhere; }
tr.error-row th { font-weight: normal; }
tbody tr:nth-child(even) { background: var(--row); }
.muted { color: var(--muted); }
.state { display: inline-block; padding: 0 .4rem; border-radius: .2rem; border: 1px solid currentColor;
  white-space: nowrap; }
.state.good { color: var(--ok); }
.state.busy { color: var(--warn); border-style: dashed; }
.state.bad { color: var(--bad); border-width: 2px; font-weight: 600; }
.level-warn { color: var(--warn); }
.level-error, .level-fatal { color: var(--bad); font-weight: 600; }
svg.spark { vertical-align: middle; margin-left: .4rem; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
pre { margin: .25rem 0; white-space: pre-wrap; word-break: break-word; max-width: 60rem; font-size: 12px; }
#connection.lost { color: var(--bad); font-weight: 600; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
.actions label { display: flex; flex-direction: column; font-size: 12px; }
input, button { font: inherit; padding: .25rem .6rem; }
button { cursor: pointer; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
`;
