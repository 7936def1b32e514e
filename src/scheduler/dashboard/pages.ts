/** The dashboard's HTML: one page that the bundled script fills in, the login form, and their style. */

const STYLE = `
:root { color-scheme: light; --fg: #1d2330; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --accent: #2563eb; --bad: #dc2626; --ok: #16a34a; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: center; padding: 8px 16px; background: #111827; color: #fff; }
header b { font-size: 15px; letter-spacing: .5px; }
header a { color: #cbd5e1; text-decoration: none; padding: 4px 8px; border-radius: 4px; }
header a.on { background: #374151; color: #fff; }
header .live { margin-left: auto; color: #9ca3af; font-size: 12px; }
main { padding: 12px 16px; display: grid; gap: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
section h2 { margin: 0 0 8px; font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; }
/* The status page fills the window: workers and progress (scrolling when long), the task stream taking the height left, states over time. */
main.status { height: calc(100vh - 41px); grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); grid-template-rows: minmax(0, auto) minmax(200px, 1fr) 220px; }
main.status > #workers-panel, main.status > #progress { max-height: 36vh; overflow: auto; }
main.status > #task-stream, main.status > #states-chart { grid-column: 1 / 3; }
#task-stream, #states-chart { display: flex; flex-direction: column; min-height: 0; }
#task-stream .stream-box { flex: 1; min-height: 0; overflow-y: auto; }
main.status #states-chart svg { flex: 1; min-height: 0; height: auto !important; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { position: relative; height: 14px; background: #eef2f7; border-radius: 3px; overflow: hidden; min-width: 120px; display: flex; }
.bar > span { display: block; height: 100%; }
.bar > em { position: absolute; right: 4px; top: 0; font-style: normal; font-size: 11px; line-height: 14px; color: #111; }
.err { color: var(--bad); }
.muted { color: var(--muted); }
input[type=search] { width: 320px; padding: 4px 6px; }
canvas { width: 100%; display: block; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; vertical-align: -1px; }
.login { max-width: 360px; margin: 80px auto; }
.login input { width: 100%; padding: 6px; margin: 8px 0; }
pre { white-space: pre-wrap; margin: 0; }
`;

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page every dashboard path serves: the script reads the path and draws it. `inline`: the script itself (a self-contained report) instead of its URL. */
export function appPage(title: string, inline?: { script: string; data: unknown }): string {
  const script = inline
    ? // The data goes in as JSON text: '<' is escaped so no value can close the script element.
      `<script id="weft-report" type="application/json">${JSON.stringify(inline.data).replace(/</g, '\\u003c')}</script><script type="module">${inline.script.replace(/<\/script/gi, '<\\/script')}</script>`
    : '<script type="module" src="/assets/app.js"></script>';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escape(title)}</title><style>${STYLE}</style></head><body><div id="app"></div>${script}</body></html>`;
}

/** The login form (`wrong`: the last token given was not the scheduler's). */
export function loginPage(next: string, wrong: boolean): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>weft: log in</title><style>${STYLE}</style></head><body>
<form class="login" method="post" action="/login"><section><h2>weft dashboard</h2>
<p>This scheduler wants its token.</p>${wrong ? '<p class="err" id="wrong">That is not the token: access refused.</p>' : ''}
<input type="password" name="token" placeholder="token" autofocus autocomplete="current-password">
<input type="hidden" name="next" value="${escape(next)}"><button type="submit">Log in</button></section></form></body></html>`;
}
