/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * `vfio-mc coverage --html FILE`: the coverage run as one self-contained page in the report
 * style of html-report.tsx (same stylesheet, same Content-Security-Policy, no script): the
 * per-file table, the four files' function gaps, the citation check, then each file's functions
 * and its source with every instrumented line coloured by who reached it (both, the models
 * only, the selftests only, neither).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderToString } from 'preact-render-to-string';
import type { FileRow, Tally } from '../../conformance/coverage/report.ts';
import type { CoverageResult } from '../../conformance/coverage/run.ts';

const CSS = readFileSync(new URL('../client/style.css', import.meta.url), 'utf8');
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:";

const EXTRA_CSS = `
.cov td.num { text-align: right; font-family: var(--mono); }
.cov-src { font-family: var(--mono); font-size: 12px; border-collapse: collapse; width: 100%; }
.cov-src td { padding: 0 6px; white-space: pre; vertical-align: top; }
.cov-src td.n { color: var(--muted); text-align: right; user-select: none; }
.cov-src td.c { color: var(--muted); text-align: right; }
.cov-src tr.both td.code { background: #dff3e4; }
.cov-src tr.models td.code { background: var(--accent-bg); }
.cov-src tr.selftests td.code { background: var(--warn-bg); }
.cov-src tr.neither td.code { background: var(--bad-bg); }
.legend span { padding: 0 6px; margin-right: 8px; font-family: var(--mono); }
.legend .both { background: #dff3e4; } .legend .models { background: var(--accent-bg); }
.legend .selftests { background: var(--warn-bg); } .legend .neither { background: var(--bad-bg); }
details.file > summary { cursor: pointer; font-family: var(--mono); }
`;

const anchor = (f: string) => `file-${f.replace(/[^A-Za-z0-9_-]/g, '_')}`;
const pct = (n: number, t: number) => (t === 0 ? '-' : `${((100 * n) / t).toFixed(1)}%`);

function TallyCells({ t }: { t: Tally }) {
  return (
    <>
      <td class="num">{t.total}</td>
      <td class="num">{pct(t.models, t.total)}</td>
      <td class="num">{pct(t.selftests, t.total)}</td>
      <td class="num">{pct(t.both, t.total)}</td>
      <td class="num">{pct(t.union, t.total)}</td>
    </>
  );
}

const TALLY_HEAD = ['', 'models', 'selftests', 'both', 'union'];

function FileTable({ files }: { files: readonly FileRow[] }) {
  return (
    <table class="verdict-table cov">
      <thead>
        <tr>
          <th>file</th>
          {TALLY_HEAD.map((h) => (
            <th key={`l${h}`}>{h || 'lines'}</th>
          ))}
          {TALLY_HEAD.map((h) => (
            <th key={`b${h}`}>{h || 'branches'}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {files.map((f) => (
          <tr key={f.file}>
            <td>
              <a href={`#${anchor(f.file)}`}>{f.file}</a>
            </td>
            <TallyCells t={f.lines} />
            <TallyCells t={f.branches} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Source({ file, sourceDir }: { file: FileRow; sourceDir: string }) {
  const path = join(sourceDir, file.file);
  if (!existsSync(path)) return <p class="note">source {path} not found</p>;
  const text = readFileSync(path, 'utf8').split('\n');
  const hits = new Map(file.hits.map(([n, m, s]) => [n, { m, s }]));
  return (
    <table class="cov-src">
      <tbody>
        {text.map((code, i) => {
          const h = hits.get(i + 1);
          const cls = h ? (h.m && h.s ? 'both' : h.m ? 'models' : h.s ? 'selftests' : 'neither') : '';
          return (
            <tr key={i} class={cls} id={`${anchor(file.file)}-L${i + 1}`}>
              <td class="n">{i + 1}</td>
              <td class="c">{h ? `${h.m}` : ''}</td>
              <td class="c">{h ? `${h.s}` : ''}</td>
              <td class="code">{code}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function FileSection({ file, sourceDir }: { file: FileRow; sourceDir: string }) {
  return (
    <section class="run" id={anchor(file.file)}>
      <h2>{file.file}</h2>
      <table class="verdict-table cov">
        <thead>
          <tr>
            <th>function</th>
            <th>line</th>
            {TALLY_HEAD.map((h) => (
              <th key={`l${h}`}>{h || 'lines'}</th>
            ))}
            {TALLY_HEAD.map((h) => (
              <th key={`b${h}`}>{h || 'branches'}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {file.functions.map((f) => (
            <tr key={f.name}>
              <td>
                <a href={`#${anchor(file.file)}-L${f.start}`}>{f.name}</a>
              </td>
              <td class="num">{f.start}</td>
              <TallyCells t={f.lines} />
              <TallyCells t={f.branches} />
            </tr>
          ))}
        </tbody>
      </table>
      <details class="file">
        <summary>source (columns: line, models' count, selftests' count)</summary>
        <Source file={file} sourceDir={sourceDir} />
      </details>
    </section>
  );
}

function Report({ r, sourceDir }: { r: CoverageResult; sourceDir: string }) {
  return (
    <div class="report">
      <header>
        <span class="brand">vfio-mc coverage</span>
        <code>Linux {r.kernel}</code>
        <span class="description">
          {r.date}, digest {r.digest}
        </span>
      </header>
      <p class="legend">
        <span class="both">both</span>
        <span class="models">models only</span>
        <span class="selftests">selftests only</span>
        <span class="neither">neither</span>
      </p>
      <h2>Files</h2>
      <FileTable files={r.files} />
      <h2>Functions of the four files</h2>
      {r.focus.map((f) => (
        <div key={f.file}>
          <h3>{f.file}</h3>
          <p>selftests only: {f.selftestsOnly.join(', ') || '-'}</p>
          <p>models only: {f.modelsOnly.join(', ') || '-'}</p>
          <p>neither: {f.neither.join(', ') || '-'}</p>
          <p>both, with lines/branches only the models hit: {f.modelsOnlyLines.join(', ') || '-'}</p>
        </div>
      ))}
      <h2>Citation check</h2>
      {r.protocols.map((p) => (
        <div key={p.model}>
          <h3>{p.model}</h3>
          <table class="verdict-table cov">
            <thead>
              <tr>
                <th>transition</th>
                <th>steps</th>
                <th>cites</th>
                <th>cited, never reached</th>
                <th>reached, cited elsewhere</th>
                <th>reached, cited nowhere</th>
              </tr>
            </thead>
            <tbody>
              {p.transitions.map((t) => (
                <tr key={t.event}>
                  <td>{t.event}</td>
                  <td class="num">{t.steps}</td>
                  <td>{t.cites.join(' ')}</td>
                  <td>{t.citedNotReached.join(' ')}</td>
                  <td>{t.reachedCitedElsewhere.join(' ')}</td>
                  <td>{t.uncited.join(' ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {p.specNotReached.length > 0 && <p>spec cites, no step reached: {p.specNotReached.join(' ')}</p>}
        </div>
      ))}
      {r.files.map((f) => (
        <FileSection key={f.file} file={f} sourceDir={sourceDir} />
      ))}
    </div>
  );
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function coverageHtml(r: CoverageResult, sourceDir: string): string {
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    `<title>vfio-mc coverage: Linux ${escape(r.kernel)}</title>`,
    `<style>${CSS}${EXTRA_CSS}</style></head><body>`,
    renderToString(<Report r={r} sourceDir={sourceDir} />),
    '</body></html>',
    '',
  ].join('\n');
}
