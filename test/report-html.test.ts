// summary.html: escaping of everything a guest wrote, and the page in a real browser (Debian's
// chromium driven by playwright-core; no browser download): one heatmap entry per cell, failed
// cells marked, a link opens the cell view, nothing loaded from the network. The screenshot is
// saved as a test artifact in reports/test-artifacts/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { summarizeCell } from '../src/analysis/cell.ts';
import { readRun } from '../src/report/merge.ts';
import { renderHtml } from '../src/report/html.ts';
import { esc, sparkline } from '../src/report/html-parts.ts';
import type { Manifest } from '../src/report/manifest.ts';
import { writeSummary } from '../src/report/summary.ts';
import { inCI } from './helpers/requirements.ts';
import { copyFixture } from './helpers/report-fixture.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
export const ARTIFACTS = new URL('../reports/test-artifacts/', import.meta.url).pathname;

describe('summary.html escapes what came from a guest', () => {
  it('paths, logs, comm names, target and kernel strings with markup and quotes are text, never markup', () => {
    const hostile = `<script>alert("x")</script>'"&`;
    const base = summarizeCell(
      { target: 'sid', cpus: 1, reads: 'full', variant: 'upstream', mode: 'interleaved', scenario: 'preexisting' },
      { kernel: `7.0<img src=x onerror=alert(1)>`, openssl: '3.6"' },
      [{ trial: 1, status: 'client-failed', error: `client died: ${hostile}` }],
    );
    const manifest: Manifest = {
      runId: 'r<1>',
      tool: { commit: 'abc', dirty: false, node: 'v20' },
      startedAt: 'now',
      argv: [hostile],
      seed: 1,
      iterations: 2,
      trials: 1,
      variants: ['upstream'],
      modes: ['interleaved'],
      scenarios: ['preexisting'],
      targets: [{ name: 'sid', backend: 'qemu', status: 'cells-failed', facts: { comm: hostile } }],
    };
    const artifacts = new Map([
      [
        `sid/preexisting/interleaved/upstream`,
        {
          dir: '/r/sid/x',
          trials: [],
          files: [{ trial: 1, name: `"><script>.log`, path: `/r/sid/x/trial-1/"><script>.log` }],
          logTail: `comm ${hostile}\npath /tmp/${hostile}`,
          rows: [{ trial: 1, path: `/200/conn1-iter0${hostile}`, clientPort: 1, serverPort: 2, statuses: '200', count: 1 }],
          rowsTotal: 1,
        },
      ],
    ]);
    const html = renderHtml({ manifest, cells: [base], artifacts, outDir: '/r' });
    expect(html.match(/<script/gi)).toBeNull();
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&quot;&amp;');
    expect(html).toContain('href="sid/x/trial-1/%22%3E%3Cscript%3E.log"');
    expect(esc(`<a href='x'>&`)).toBe('&lt;a href=&#39;x&#39;&gt;&amp;');
  });

  it('the sparkline is an inline SVG with one point per run; failed runs are crosses', () => {
    const svg = sparkline([0.5, 0.4, 'failed', 0.6]);
    expect(svg).toMatch(/^<svg class="spark"/);
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg).toContain('<path d="M');
    expect(sparkline([0.5])).toBe('');
  });
});

describe.skipIf(!haveChromium && !inCI)(
  `summary.html in headless Chromium${haveChromium ? '' : ` (skipped: no ${CHROMIUM}; bash provision/host-deps.sh report)`}`,
  () => {
    let ctx: BrowserContext;
    let page: string;
    let cells: number;
    beforeAll(async () => {
      const dir = copyFixture('html-');
      const run = await readRun(dir);
      cells = run.cells.length;
      await writeSummary(dir, run.manifest, run.cells);
      page = join(dir, 'summary.html');
      // a fresh profile per run; playwright adds --headless (and never downloads a browser here)
      ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'chromium-profile-')), {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
        viewport: { width: 1280, height: 900 },
        timeout: 60_000,
      });
    }, 120_000);
    afterAll(async () => {
      await ctx?.close();
    });

    it('has one heatmap entry per cell, marks the failed cells and the verdicts, opens a cell view from its link, loads nothing from the network', async () => {
      const p = await ctx.newPage();
      const requests: string[] = [];
      p.on('request', (r) => requests.push(r.url()));
      await p.goto(pathToFileURL(page).href, { timeout: 30_000 });

      expect(cells).toBe(16);
      await expect(p.locator('table.heatmap td.hm-cell').count()).resolves.toBe(cells);
      await expect(p.locator('td.hm-cell.failed').count()).resolves.toBe(9); // bullseye's 8 (boot-timeout) + the simulated tracer failure
      const failed = p.locator('td.hm-cell[data-cell="local/preexisting/interleaved/scoped"]');
      await expect(failed.getAttribute('class')).resolves.toContain('failed');
      await expect(failed.innerText()).resolves.toContain('tracer-failed');
      await expect(p.locator('tr.investigation td.inv').count()).resolves.toBeGreaterThan(0);
      await expect(p.locator('#failures').innerText()).resolves.toContain('bullseye (all 8 cells)');

      // cell views are hidden until their link is followed
      const view = p.locator('#cell-local-preexisting-interleaved-scoped');
      await expect(view.isVisible()).resolves.toBe(false);
      await failed.locator('a').click();
      await expect(view.isVisible()).resolves.toBe(true);
      expect(p.url()).toMatch(/#cell-local-preexisting-interleaved-scoped$/);
      const text = await view.innerText();
      expect(text).toContain('Status: tracer-failed');
      expect(text).toContain('conn1 right');
      // the simulated tracer.log carries <script> and quotes: shown as text, never run
      expect(text).toContain('comm "<script>window.__pwned=1</script>"');
      await expect(p.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).resolves.toBeUndefined();
      await expect(view.locator('ul.files a').count()).resolves.toBeGreaterThan(3);
      const logHref = await view.locator('ul.files a', { hasText: 'trial 2: tracer.log' }).getAttribute('href');
      expect(logHref).toBe('local/preexisting-interleaved-scoped/trial-2/tracer.log');
      await expect(view.locator('ul.files a', { hasText: 'http_monitoring.json' }).count()).resolves.toBe(2);

      mkdirSync(ARTIFACTS, { recursive: true });
      await p.goto(`${pathToFileURL(page).href}#heatmap`);
      await p.screenshot({ path: join(ARTIFACTS, 'summary-html.png'), fullPage: false });
      await failed.locator('a').click();
      await p.screenshot({ path: join(ARTIFACTS, 'summary-html-cell.png'), fullPage: false });
      expect(readFileSync(join(ARTIFACTS, 'summary-html.png')).subarray(1, 4).toString()).toBe('PNG');
      expect(requests.filter((u) => !u.startsWith('file:'))).toEqual([]);
      await p.close();
    }, 120_000);
  },
);
