// Cells that are not rerun for nothing (issue 11, section 6): a run over a folder that holds one
// reuses every complete cell whose inputs are unchanged, and boots no target whose every cell is
// reused. Fake backend and scenario (test/helpers/fake-lab.ts): no VM, no tracer.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parseMatrixFlags, HELP } from '../src/cli/flags.ts';
import { matrixMain } from '../src/cli/matrix.ts';
import { resolveRun } from '../src/cli/run.ts';
import { parseMatrix, type MatrixConfig } from '../src/config/matrix.ts';
import { ConfigError, LabError } from '../src/errors.ts';
import { imagePaths, recipeFor, recipeHash } from '../src/images/index.ts';
import { runMatrix, type ResolvedRun } from '../src/matrix.ts';
import { canonicalJson, cellInputs, INPUTS_VERSION, readPreviousRun, reusableCells, reusableReport, targetIdentity } from '../src/plan/resume.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import type { CellReport } from '../src/report/cell.ts';
import { FakeBackend, fakePrepare, fakeRun, fakeTrial } from './helpers/fake-lab.ts';

const tmp = mkdtempSync(join(tmpdir(), 'usm-lab-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let labs = 0;

interface Lab {
  repo: string;
  cache: string;
  out: string;
}

/** The bookworm image as the cache's manifest.json describes it (the current recipe, this checksum). */
function writeImage(cache: string, sha256: string): void {
  const p = imagePaths(cache, 'bookworm');
  mkdirSync(p.dir, { recursive: true });
  writeFileSync(p.manifest, JSON.stringify({ suite: 'bookworm', kernel: '6.1.0-fake', recipeHash: recipeHash(recipeFor('bookworm')), sha256 }));
}

/** A repository with guest-side sources, an image cache, a report folder not yet written. */
function lab(): Lab {
  const dir = join(tmp, `lab-${++labs}`);
  const l = { repo: join(dir, 'repo'), cache: join(dir, 'cache'), out: join(dir, 'out') };
  mkdirSync(join(l.repo, 'bpf'), { recursive: true });
  writeFileSync(join(l.repo, 'bpf', 'usm_tls.bpf.c'), '// v1\n');
  writeImage(l.cache, 'a'.repeat(64));
  return l;
}

function settings(l: Lab, over: Partial<ResolvedRun> = {}): ResolvedRun {
  return fakeRun({ targets: ['a', 'b'], outDir: l.out, runId: `run-${labs}-${Date.now()}`, cacheDir: l.cache, resume: 'auto' }, over);
}

type Trial = Parameters<typeof fakeTrial>[0];

/** One run over the lab's folder; what booted and which trials ran. */
async function run(l: Lab, over: Partial<ResolvedRun> = {}, o: { fail?: NonNullable<Trial>['fail']; signal?: AbortSignal; onRun?: () => void } = {}) {
  const backend = new FakeBackend();
  const ran: string[] = [];
  const events: ProgressEvent[] = [];
  const res = await runMatrix(settings(l, over), {
    repoRoot: l.repo,
    backends: async () => backend,
    emit: (e) => events.push(e),
    signal: o.signal ?? new AbortController().signal,
    argv: [],
    scenario: {
      prepareMachine: fakePrepare,
      runTrial: fakeTrial({
        onRun: o.onRun,
        fail: (s) => {
          ran.push(`${s.target}/${s.mode}#${s.trial}`);
          return o.fail?.(s);
        },
      }),
    },
  });
  return { res, ups: backend.ups, ran: ran.sort(), events };
}

const report = (l: Lab, target: string, mode: string): CellReport =>
  JSON.parse(readFileSync(join(l.out, target, `baseline-${mode}-upstream`, 'report.json'), 'utf8')) as CellReport;

describe('a run over a folder that holds one', () => {
  it('nothing changed: nothing boots, no trial runs, the summary lists every cell, the manifest says what was reused', async () => {
    const l = lab();
    const first = await run(l);
    expect(first.ups).toEqual(['a', 'b']);
    expect(first.ran).toHaveLength(4);
    expect(first.res.manifest.resumedFrom).toBeUndefined();
    expect(report(l, 'a', 'sequential').inputs?.hash).toMatch(/^[0-9a-f]{64}$/);

    const again = await run(l);
    expect(again.ups).toEqual([]);
    expect(again.ran).toEqual([]);
    expect(again.res.exitCode).toBe(first.res.exitCode);
    expect(again.res.cells.map((c) => [c.target, c.mode, c.status, c.kernel])).toEqual(first.res.cells.map((c) => [c.target, c.mode, c.status, c.kernel]));
    const summary = JSON.parse(readFileSync(join(l.out, 'summary.json'), 'utf8')) as unknown[];
    expect(summary).toHaveLength(4);
    const manifest = JSON.parse(readFileSync(join(l.out, 'manifest.json'), 'utf8'));
    expect(manifest.resumedFrom).toEqual({ runId: first.res.manifest.runId, startedAt: first.res.manifest.startedAt });
    expect(manifest.targets.map((t: { name: string; reused: number; status: string }) => [t.name, t.reused, t.status])).toEqual([
      ['a', 2, 'ok'],
      ['b', 2, 'ok'],
    ]);
    // Not booted: the facts of the previous boot stand.
    expect(manifest.targets[0].facts.accel).toBe('kvm');
    expect(again.events.filter((e) => e.type === 'reused')).toEqual([
      { type: 'reused', target: 'a', cells: 2, of: 2, boot: false },
      { type: 'reused', target: 'b', cells: 2, of: 2, boot: false },
    ]);
    // The reused cells keep their files.
    expect(existsSync(join(l.out, 'a', 'baseline-sequential-upstream', 'trial-1', 'client.out'))).toBe(true);
  });

  it("a changed mode's iterations: its cells only run again, each target boots once for them", async () => {
    const l = lab();
    await run(l);
    const again = await run(l, { iterationsByMode: { interleaved: 3 } });
    expect(again.ups).toEqual(['a', 'b']);
    expect(again.ran).toEqual(['a/interleaved#1', 'b/interleaved#1']);
    expect(again.events.filter((e) => e.type === 'reused').map((e) => e.type === 'reused' && [e.target, e.cells, e.of, e.boot])).toEqual([
      ['a', 1, 2, true],
      ['b', 1, 2, true],
    ]);
    expect(again.res.cells).toHaveLength(4);
    expect(again.res.manifest.targets.map((t) => t.reused)).toEqual([1, 1]);
    expect(report(l, 'a', 'interleaved').inputs?.parts.iterations).toBe(3);
    expect(report(l, 'a', 'sequential').inputs?.parts.iterations).toBe(2);
  });

  it.each<[string, (l: Lab) => Partial<ResolvedRun>]>([
    ['--iterations', () => ({ iterations: 5 })],
    ['--trials', () => ({ trials: 2 })],
    ['--ports', () => ({ ports: [19001, 19002] })],
    ['--hook', () => ({ hook: 'kprobe' })],
    ['--nagle', () => ({ nagle: 'on' })],
    [
      'the sources of bpf/',
      (l) => {
        writeFileSync(join(l.repo, 'bpf', 'usm_tls.bpf.c'), '// v2\n');
        return {};
      },
    ],
    [
      'the image (another checksum in the cache manifest)',
      (l) => {
        writeImage(l.cache, 'b'.repeat(64));
        return {};
      },
    ],
    [
      'the image not built yet (no cache manifest: unknown before a build)',
      (l) => {
        rmSync(imagePaths(l.cache, 'bookworm').manifest);
        return {};
      },
    ],
    ['--rebuild (a new image)', () => ({ rebuild: true })],
  ])('%s changed: every cell runs again', async (_what, change) => {
    const l = lab();
    await run(l);
    const again = await run(l, change(l));
    expect(again.ups).toEqual(['a', 'b']);
    expect(again.ran.filter((r) => r.endsWith('#1'))).toHaveLength(4);
    expect(again.events.some((e) => e.type === 'reused')).toBe(false);
  });

  it('a failed cell runs again, the complete ones are reused', async () => {
    const l = lab();
    const fail = (s: { target: string; mode: string }) =>
      s.target === 'b' && s.mode === 'sequential' ? new LabError('tracer-failed', 'tracer exited with code 1') : undefined;
    const first = await run(l, {}, { fail });
    expect(first.res.exitCode).toBe(3);
    const again = await run(l);
    expect(again.ups).toEqual(['b']);
    expect(again.ran).toEqual(['b/sequential#1']);
    expect(again.res.cells.every((c) => c.status === 'ok')).toBe(true);
    expect(again.res.exitCode).toBe(0);
  });

  it('an interrupted run resumes where it stopped: the interrupted cell and the target that never booted', async () => {
    const l = lab();
    const ac = new AbortController();
    let n = 0;
    const first = await run(l, {}, { signal: ac.signal, onRun: () => void (++n === 1 && ac.abort()) });
    expect(first.res.exitCode).toBe(130);
    expect(first.ups).toEqual(['a']);
    const done = first.res.cells.find((c) => c.status === 'ok')!;
    const again = await run(l);
    expect(again.ups).toEqual(['a', 'b']);
    const other = done.mode === 'sequential' ? 'interleaved' : 'sequential';
    expect(again.ran).toEqual([`a/${other}#1`, 'b/interleaved#1', 'b/sequential#1']);
    expect(again.res.exitCode).toBe(0);
  });

  it('a run killed before its first target finished is a report folder all the same (manifest.json from the start)', async () => {
    const l = lab();
    let during: string | null = null;
    // What a kill -9 during the first trial would leave: read while that trial runs, before any summary.
    await run(
      l,
      {},
      { onRun: () => void (during ??= existsSync(join(l.out, 'summary.json')) ? 'summary' : readFileSync(join(l.out, 'manifest.json'), 'utf8')) },
    );
    expect(during).not.toBe('summary');
    expect(JSON.parse(during!)).toMatchObject({ targets: [] });
    expect(await readPreviousRun(l.out, true)).toMatchObject({ runId: expect.any(String) });
  });

  it('--force reruns every cell, reusable or not', async () => {
    const l = lab();
    await run(l);
    const again = await run(l, { force: true });
    expect(again.ups).toEqual(['a', 'b']);
    expect(again.ran).toHaveLength(4);
    expect(again.res.manifest.resumedFrom).toBeUndefined();
  });

  it('a cell that runs again leaves no trial folder of the earlier run', async () => {
    const l = lab();
    await run(l, { trials: 2 });
    expect(existsSync(join(l.out, 'a', 'baseline-sequential-upstream', 'trial-2'))).toBe(true);
    await run(l, { trials: 1 });
    expect(existsSync(join(l.out, 'a', 'baseline-sequential-upstream', 'trial-2'))).toBe(false);
    expect(report(l, 'a', 'sequential').trials).toHaveLength(1);
  });

  it("resume 'off' (a new folder) reuses nothing; 'required' on a folder that is not a report folder is a ConfigError before any boot", async () => {
    const l = lab();
    await run(l);
    expect((await run(l, { resume: 'off' })).ran).toHaveLength(4);
    const empty = join(tmp, `empty-${labs}`);
    mkdirSync(empty);
    const b = new FakeBackend();
    const err = await runMatrix(settings(l, { resume: 'required', outDir: empty }), {
      repoRoot: l.repo,
      backends: async () => b,
      emit: () => {},
      signal: new AbortController().signal,
      argv: [],
      scenario: { prepareMachine: fakePrepare, runTrial: fakeTrial() },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`--resume ${empty}: not a report folder`);
    expect(b.ups).toEqual([]);
  });
});

describe('the inputs fingerprint', () => {
  const cell = { target: 'a', cpus: 1, boot: 'a', reads: 'full', scenario: 'baseline', mode: 'sequential', variant: 'upstream' } as const;
  const s = { iterations: 2, trials: 1, ports: [1, 2], trace: 'all', api: 'classic', hook: 'auto', nagle: 'off', settleMs: 0 };
  it('canonical: the order of keys does not change the hash; every part does', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
    const h = cellInputs(cell, s, 'src', { backend: 'qemu', image: { sha256: 'x' } }).hash;
    expect(cellInputs(cell, { ...s }, 'src', { image: { sha256: 'x' }, backend: 'qemu' }).hash).toBe(h);
    expect(cellInputs({ ...cell, cpus: 2 }, s, 'src', { backend: 'qemu', image: { sha256: 'x' } }).hash).not.toBe(h);
    expect(cellInputs(cell, { ...s, api: 'ex' }, 'src', { backend: 'qemu', image: { sha256: 'x' } }).hash).not.toBe(h);
    expect(cellInputs(cell, { ...s, settleMs: 2000 }, 'src', { backend: 'qemu', image: { sha256: 'x' } }).hash).not.toBe(h);
    expect(cellInputs(cell, s, 'src2', { backend: 'qemu', image: { sha256: 'x' } }).hash).not.toBe(h);
    expect(cellInputs(cell, s, 'src', { backend: 'qemu', image: { sha256: 'y' } }).hash).not.toBe(h);
  });
});

describe('the target identity, from files on disk (no boot)', () => {
  it('qemu: the cache manifest of the current recipe; vagrant: that image or the installed box versions, and the Vagrantfile', async () => {
    const l = lab();
    const o = { cacheDir: l.cache, repoRoot: l.repo, rebuild: false };
    expect(await targetIdentity({ name: 'a', backend: 'qemu', suite: 'bookworm' }, o)).toMatchObject({ backend: 'qemu', image: { sha256: 'a'.repeat(64) } });
    expect(await targetIdentity({ name: 'a', backend: 'qemu', suite: 'bookworm' }, { ...o, rebuild: true })).toBeNull();
    // the VM's memory is part of what boots: a target's own memory, else null (the run's default)
    expect(await targetIdentity({ name: 'a', backend: 'qemu', suite: 'bookworm', memoryMiB: 2048 }, o)).toMatchObject({ memoryMiB: 2048 });
    expect(await targetIdentity({ name: 'a', backend: 'qemu', suite: 'bookworm' }, o)).toMatchObject({ memoryMiB: null });
    // A manifest of another recipe: the boot would build a new image.
    writeFileSync(imagePaths(l.cache, 'bookworm').manifest, JSON.stringify({ suite: 'bookworm', recipeHash: 'old', sha256: 'x' }));
    expect(await targetIdentity({ name: 'a', backend: 'qemu', suite: 'bookworm' }, o)).toBeNull();
    const box = { name: 'v', backend: 'vagrant', box: 'debian/bookworm64' } as const;
    expect(await targetIdentity(box, o)).toBeNull(); // no Vagrantfile
    writeFileSync(join(l.repo, 'Vagrantfile'), '# v1\n');
    expect(await targetIdentity(box, o)).toBeNull(); // the box not added yet: the boot would download it
    mkdirSync(join(l.cache, 'vagrant.d', 'boxes', 'debian-VAGRANTSLASH-bookworm64', '12.20250101.1', 'libvirt'), { recursive: true });
    const id = await targetIdentity(box, o);
    expect(id).toMatchObject({ backend: 'vagrant', box: 'debian/bookworm64', versions: ['12.20250101.1'] });
    writeFileSync(join(l.repo, 'Vagrantfile'), '# v2\n');
    expect((await targetIdentity(box, o))!.vagrantfile).not.toBe(id!.vagrantfile);
  });

  it("vagrant with a suite: the suite's image manifest and the Vagrantfile; no Vagrantfile, no identity", async () => {
    const l = lab();
    const o = { cacheDir: l.cache, repoRoot: l.repo, rebuild: false };
    const t = { name: 'vs', backend: 'vagrant', suite: 'bookworm', memoryMiB: 1536 } as const;
    expect(await targetIdentity(t, o)).toBeNull(); // no Vagrantfile
    writeFileSync(join(l.repo, 'Vagrantfile'), '# v1\n');
    const id = await targetIdentity(t, o);
    expect(id).toEqual({
      backend: 'vagrant',
      memoryMiB: 1536,
      image: { suite: 'bookworm', recipeHash: expect.any(String), sha256: 'a'.repeat(64), kernel: expect.any(String) },
      vagrantfile: createHash('sha256').update('# v1\n').digest('hex'),
    });
    expect(await targetIdentity(t, { ...o, rebuild: true })).toBeNull();
  });
});

describe('--resume and --force', () => {
  // parsed in each test (not while the file is collected), so mutation testing sees which tests use it
  let cfg: MatrixConfig;
  beforeEach(() => {
    cfg = parseMatrix('targets:\n  bw: { backend: qemu, suite: bookworm }\n', 'm.yaml');
  });
  const env = { cwd: '/w', home: '/h', now: new Date('2026-11-24T10:00:00Z') };
  it('parsed, and in --help', () => {
    expect(parseMatrixFlags(['--resume', 'r/x', '--force'])).toMatchObject({ resume: 'r/x', force: true });
    expect(parseMatrixFlags([])).toMatchObject({ resume: undefined, force: false });
    expect(HELP).toMatch(/--resume DIR/);
    expect(HELP).toMatch(/--force/);
  });

  it('--resume DIR writes to DIR; --out DIR resumes the run DIR holds; a new folder resumes nothing; --resume and --out must agree', () => {
    expect(resolveRun(cfg, parseMatrixFlags(['--resume', 'reports/r1']), env)).toMatchObject({ outDir: '/w/reports/r1', resume: 'required', force: false });
    expect(resolveRun(cfg, parseMatrixFlags(['--resume', 'reports/r1', '--out', '/w/reports/r1']), env)).toMatchObject({ outDir: '/w/reports/r1' });
    expect(resolveRun(cfg, parseMatrixFlags(['--out', 'o']), env)).toMatchObject({ outDir: '/w/o', resume: 'auto' });
    expect(resolveRun(cfg, parseMatrixFlags(['--force', '--out', 'o']), env)).toMatchObject({ resume: 'auto', force: true });
    expect(resolveRun(cfg, parseMatrixFlags([]), env)).toMatchObject({ outDir: '/w/reports/20261124T100000Z', resume: 'off' });
    expect(() => resolveRun(cfg, parseMatrixFlags(['--resume', 'a', '--out', 'b']), env)).toThrow(/--resume a and --out b name different folders/);
  });

  it('matrix.mjs --resume on a folder that is not a report folder: exit 2', async () => {
    const dir = join(tmp, 'cli');
    mkdirSync(join(dir, 'not-a-run'), { recursive: true });
    writeFileSync(join(dir, 'm.yaml'), 'targets:\n  bw: { backend: qemu, suite: bookworm }\ndefault_targets: [bw]\n');
    const err = new PassThrough();
    let text = '';
    err.on('data', (d: Buffer) => (text += d.toString()));
    const code = await matrixMain({
      argv: ['--config', join(dir, 'm.yaml'), '--resume', 'not-a-run'],
      cwd: dir,
      repoRoot: dir,
      env: {},
      stdout: new PassThrough() as unknown as NodeJS.WriteStream,
      stderr: err as unknown as NodeJS.WriteStream,
      signal: new AbortController().signal,
    });
    expect(code).toBe(2);
    expect(text).toContain(`--resume ${join(dir, 'not-a-run')}: not a report folder`);
  });
});

describe('resume: the pieces, case by case', () => {
  const cell = { target: 'a', cpus: 1, boot: 'a', reads: 'full', scenario: 'baseline', mode: 'sequential', variant: 'upstream' } as const;
  const s = { iterations: 2, trials: 1, ports: [1, 2], trace: 'all', api: 'classic', hook: 'auto', nagle: 'off', settleMs: 0 };

  it('canonicalJson: undefined keys dropped, arrays kept in order, scalars as JSON', () => {
    expect(canonicalJson({ z: undefined, b: [3, 1, { y: null, x: 'q' }], a: true })).toBe('{"a":true,"b":[3,1,{"x":"q","y":null}]}');
    expect(canonicalJson('s')).toBe('"s"');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson([])).toBe('[]');
  });

  it('cellInputs: the parts hashed are the version, the cell, the settings, the sources and the target', () => {
    const ports = [1, 2];
    const r = cellInputs(cell, { ...s, ports }, 'src', { backend: 'qemu' });
    expect(r.parts).toEqual({
      version: INPUTS_VERSION,
      cell: { target: 'a', cpus: 1, reads: 'full', scenario: 'baseline', mode: 'sequential', variant: 'upstream' },
      ...s,
      ports: [1, 2],
      sources: 'src',
      target: { backend: 'qemu' },
    });
    expect(r.parts.ports).not.toBe(ports); // a copy
    expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    // the boot name is not an input: the same cell under another boot name is the same cell
    expect(cellInputs({ ...cell, boot: 'other' }, s, 'src', { backend: 'qemu' }).hash).toBe(cellInputs(cell, s, 'src', { backend: 'qemu' }).hash);
  });

  const report = (over: Record<string, unknown> = {}) => ({
    cell: { status: 'ok' },
    trials: [{ status: 'ok' }, { status: 'ok' }],
    inputs: { hash: 'h' },
    ...over,
  });
  const dirWith = (text: string | null) => {
    const d = mkdtempSync(join(tmpdir(), 'reusable-'));
    if (text !== null) writeFileSync(join(d, 'report.json'), text);
    return d;
  };

  it.each([
    ['no report.json', null],
    ['report.json not JSON', '{'],
    ['the cell not ok', JSON.stringify(report({ cell: { status: 'tracer-failed' } }))],
    ['fewer trials than asked', JSON.stringify(report({ trials: [{ status: 'ok' }] }))],
    ['a trial not ok', JSON.stringify(report({ trials: [{ status: 'ok' }, { status: 'client-failed' }] }))],
    ['other inputs', JSON.stringify(report({ inputs: { hash: 'other' } }))],
    ['no inputs (an older report)', JSON.stringify(report({ inputs: undefined }))],
    ['no cell (not a cell report)', JSON.stringify(report({ cell: undefined }))],
    ['no trials', JSON.stringify(report({ trials: undefined }))],
    ['JSON null', 'null'],
  ])('reusableReport: %s -> not reusable', async (_n, text) => {
    expect(await reusableReport(dirWith(text), 'h', 2)).toBeNull();
  });

  it('reusableReport: complete and the same inputs -> the report; reusableCells maps them by cell folder', async () => {
    const d = dirWith(JSON.stringify(report()));
    expect(await reusableReport(d, 'h', 2)).toEqual(report());
    const target = mkdtempSync(join(tmpdir(), 'reusable-target-'));
    mkdirSync(join(target, 'baseline-sequential-upstream'));
    writeFileSync(join(target, 'baseline-sequential-upstream', 'report.json'), JSON.stringify(report()));
    const other = { ...cell, variant: 'scoped' } as const;
    const m = await reusableCells(target, [cell, other], () => ({ hash: 'h', parts: {} }), 2);
    expect([...m.keys()]).toEqual(['baseline-sequential-upstream']);
  });

  it('readPreviousRun: a folder without a manifest, or with something else in it', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'prev-'));
    expect(await readPreviousRun(empty, false)).toBeNull();
    await expect(readPreviousRun(empty, true)).rejects.toThrow(new RegExp(`^--resume ${empty}: not a report folder \\(no manifest.json: ENOENT\\)$`));
    for (const text of ['{', JSON.stringify({ runId: 7, targets: [] }), JSON.stringify({ runId: 'r' }), 'null']) {
      writeFileSync(join(empty, 'manifest.json'), text);
      expect(await readPreviousRun(empty, false)).toBeNull();
      await expect(readPreviousRun(empty, true)).rejects.toThrow(/not a report folder \(manifest.json is not a run's manifest\)$/);
    }
    writeFileSync(join(empty, 'manifest.json'), JSON.stringify({ runId: 'r', targets: [] }));
    expect(await readPreviousRun(empty, true)).toEqual({ runId: 'r', targets: [] });
  });

  it('targetIdentity of local: the kernel release and the libssl a client built here links (path, size, time)', async () => {
    const o = { cacheDir: mkdtempSync(join(tmpdir(), 'ident-cache-')), repoRoot: mkdtempSync(join(tmpdir(), 'ident-repo-')), rebuild: false };
    // the first dev symlink found, as resume.ts looks for it, resolved independently here
    const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib'];
    const dev = dirs.map((d) => join(d, 'libssl.so')).find((p) => existsSync(p));
    const id = await targetIdentity({ name: 'local', backend: 'local' }, o);
    if (dev === undefined) return expect(id).toBeNull(); // no libssl-dev: the cells are rerun
    const path = realpathSync(dev);
    const st = statSync(path);
    expect(id).toEqual({ backend: 'local', kernel: release(), libssl: { path, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) } });
  });

  it('targetIdentity: unknown without what would tell it (no suite, no Vagrantfile, no box version)', async () => {
    const o = { cacheDir: mkdtempSync(join(tmpdir(), 'ident-cache-')), repoRoot: mkdtempSync(join(tmpdir(), 'ident-repo-')), rebuild: false };
    expect(await targetIdentity({ name: 'q', backend: 'qemu' }, o)).toBeNull();
    expect(await targetIdentity({ name: 'v', backend: 'vagrant', box: 'debian/bookworm64' }, o)).toBeNull(); // no Vagrantfile
    writeFileSync(join(o.repoRoot, 'Vagrantfile'), '# v\n');
    expect(await targetIdentity({ name: 'v', backend: 'vagrant' }, o)).toBeNull(); // neither suite nor box
    expect(await targetIdentity({ name: 'v', backend: 'vagrant', box: 'debian/bookworm64' }, o)).toBeNull(); // box not installed
  });
});

describe('an external tracer (matrix.yaml tracer:) and resuming', () => {
  it("its settings and files' contents are the cells' inputs: unchanged, the cells are reused; a changed file or argv reruns them", async () => {
    const l = lab();
    const tracer: NonNullable<ResolvedRun['tracer']> = {
      label: 'sp',
      expect: 'upstream',
      files: [{ src: join(l.repo, 'system-probe'), name: 'system-probe', sha256: 'a'.repeat(64), mode: 0o755 }],
      argv: ['{files}/system-probe', 'run'],
      ready: { socket: true },
      readyTimeoutMs: null,
      query: { socket: '/opt/datadog-agent/run/sysprobe.sock', path: '/network_tracer/debug/http_monitoring', timeoutMs: 1000 },
      settleMs: 0,
      stop: { signal: 'INT', timeoutMs: 1000 },
    };
    const over = { tracer, variants: ['sp'] };
    const first = await run(l, over);
    expect(first.ran).toHaveLength(4);
    expect(first.res.cells.map((c) => [c.variant, c.status])).toEqual(Array(4).fill(['sp', 'ok']));
    expect((await run(l, over)).ran).toEqual([]);
    const changedFile = { ...tracer, files: [{ ...tracer.files[0]!, sha256: 'b'.repeat(64) }] };
    expect((await run(l, { ...over, tracer: changedFile })).ran).toHaveLength(4);
    expect((await run(l, { ...over, tracer: { ...changedFile, argv: ['{files}/system-probe', 'run', '--debug'] } })).ran).toHaveLength(4);
  });
});
