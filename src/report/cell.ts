// Per-cell report.json and report.md (the attribution table in the investigation's layout).
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pct, type CellSummary, type TrialResult } from '../analysis/cell.ts';

/** A cell's inputs fingerprint (src/plan/resume.ts): a later run reuses the cell when its hash is the same. */
export interface CellInputs {
  hash: string;
  parts: Record<string, unknown>;
}

export interface CellReport {
  cell: CellSummary;
  trials: TrialResult[];
  /** Absent in reports written before runs could resume: such a cell is rerun. */
  inputs?: CellInputs;
}

export function renderCellMd(r: CellReport): string {
  const c = r.cell;
  const out: string[] = [];
  out.push(`# ${c.target}: ${c.scenario} / ${c.mode} / ${c.variant}${c.server && c.server !== 'python' ? ` / ${c.server}` : ''}`, '');
  out.push(
    `kernel ${c.kernel}, OpenSSL ${c.openssl}, ${c.cpus ?? 1} vCPU(s), server: ${c.server ?? 'python'}, client reads: ${c.reads ?? 'full'}, ${c.external ? `tracer: yours (${c.variant}, judged as ${c.external.expect ?? 'nothing: measured'})` : `kernel hooks: ${c.hook}`}; ${c.trialsOk} of ${c.trials} trial(s) ran.`,
    '',
  );
  out.push(
    `**Status: ${c.status}**${c.error ? ` (${c.error})` : ''}. Verdict: ${verdictWord(c.verdict.pass)} (expected ${c.verdict.expectation}: ${c.verdict.reason}).`,
    '',
  );
  out.push('## Attribution (rows of http_monitoring.json, as the investigation counts them)', '');
  const head = ['run'];
  for (const k of c.byConn) head.push(`conn${k.k} right`, `conn${k.k} wrong`);
  head.push('misattribution');
  out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  const row = [`${c.mode}, ${c.expected} requests expected, ${c.captured} rows captured`];
  for (const k of c.byConn) row.push(String(k.rightRows), String(k.wrongRows));
  const ci = c.misattributionCI;
  row.push(c.misattribution === null ? 'n/a (no row names a connection)' : `${pct(c.misattribution)} (${c.wrong} of ${c.captured})`);
  out.push(`| ${row.join(' | ')} |`, '');
  if (ci) out.push(`- misattribution, 95 % Wilson interval over the pooled rows: [${pct(ci.lo)}, ${pct(ci.hi)}]`);
  if (c.expected > 0) out.push(`- rows per request sent: ${(c.captured / c.expected).toFixed(2)}`);
  const sp = c.trialSpread;
  if (sp) out.push(`- across the ${sp.n} trials: mean ${pct(sp.mean)}, 95 % t interval [${pct(sp.lo)}, ${pct(sp.hi)}]`);
  out.push(`- lost (in no row): ${c.lost} of ${c.expected}; captured correctly: ${pct(c.capture)}`);
  out.push(`- symmetry of the wrong rows (min/max over connections): ${c.symmetry === null ? 'n/a' : c.symmetry.toFixed(2)}`);
  out.push(
    `- rows on tuples of no client connection (a terminator's backend side): ${c.backendRows ?? 0}; buffers dropped for lack of a tuple: ${c.droppedNoTuple ?? 'n/a'}`,
  );
  out.push('', "## Per-request truth (the client's own writes and reads)", '');
  if (c.external) out.push(`n/a: an external tracer (${c.variant}) ran: its debug endpoint gave the rows above, and no events of ours.`, '');
  else if (c.client) out.push(`n/a: your own client (${c.client}) ran, whose requests and reads are its own; the figures above are from the rows.`, '');
  else {
    out.push('| path | correct | wrong | lost |', '|---|---|---|---|');
    out.push(`| request writes | ${c.truth.writes.correct} | ${c.truth.writes.wrong} | ${c.truth.writes.lost} |`);
    out.push(`| response reads | ${c.truth.reads.correct} | ${c.truth.reads.wrong} | ${c.truth.reads.lost} |`, '');
  }
  if (c.truth.unclassifiedReads)
    out.push(
      `Client reads that did not begin with a status line, counted in neither column (a body-only read: the response's own 2-byte body with full reads, an earlier response's with single reads): ${c.truth.unclassifiedReads}.`,
      '',
    );
  if (c.http) {
    out.push("## HTTP layer (upstream's rules: flushes, terminations, the joiner at the query, the drops)", '');
    out.push('| counter | value |', '|---|---|');
    for (const [k, v] of Object.entries(c.http)) out.push(`| ${k} | ${v} |`);
    out.push('');
  }
  out.push(
    '## Trials',
    '',
    '| trial | status | rows | wrong | client ok/fail | incomplete req / orphan resp | slot writes / overwrites / consumed | ringbuf drops | s |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const t of r.trials) {
    const a = t.attribution;
    const s = t.tracerStats;
    out.push(
      `| ${t.trial} | ${t.status}${t.error ? `: ${t.error.replace(/\|/g, '/').split('\n')[0]}` : ''} | ${a?.captured ?? '-'} | ${a?.wrong ?? '-'} | ${t.clientOk ?? '-'}/${t.clientFail ?? '-'} | ${t.incompleteRequests ?? '-'} / ${t.orphanResponses ?? '-'} | ${s ? `${s.slot_writes ?? '-'} / ${s.slot_overwrites ?? '-'} / ${s.slot_consumed ?? '-'}` : '-'} | ${s?.ringbuf_drops ?? '-'} | ${t.durationMs !== undefined ? (t.durationMs / 1000).toFixed(1) : '-'} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

export function verdictWord(pass: boolean | null): string {
  return pass === null ? 'measured' : pass ? 'as expected' : 'NOT as expected';
}

export async function writeCellReport(dir: string, r: CellReport): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'report.json'), JSON.stringify(r, null, 2) + '\n');
  await writeFile(join(dir, 'report.md'), renderCellMd(r));
}
