// errors.ts: the failure line of a process's log that goes into a cell's error.
import { describe, expect, it } from 'vitest';
import { LabError, failureLine, messageWithReason, outputError } from '../src/errors.ts';

describe('failureLine', () => {
  it.each([
    ['', null],
    ['libssl: /lib/libssl.so.3\nREADY\n', null],
    [
      'libssl: x\nfailed to attach uprobe SSL_read_ex in /x/libssl.so.3: symbol not found: No such file or directory\n',
      'failed to attach uprobe SSL_read_ex in /x/libssl.so.3: symbol not found: No such file or directory',
    ],
    [
      'failed to open a: x\n  failed to load BPF program p: Permission denied (verifier log in v.log)  \ntrailer',
      'failed to load BPF program p: Permission denied (verifier log in v.log)',
    ],
    ['libbpf: prog failed to load: -13', null],
  ])('%j -> %j', (log, line) => {
    expect(failureLine(log)).toBe(line);
  });
});

describe('messageWithReason', () => {
  it('appends the detail failure line once', () => {
    const e = new LabError(
      'tracer-failed',
      'tracer-1-upstream exited with code 1 before printing /^LOADED$/',
      'libssl: x\nfailed to attach uprobe SSL_read in y: symbol not found',
    );
    expect(messageWithReason(e)).toBe(
      'tracer-1-upstream exited with code 1 before printing /^LOADED$/: failed to attach uprobe SSL_read in y: symbol not found',
    );
    const said = new LabError(
      'tracer-failed',
      'failed to attach uprobe SSL_read in y: symbol not found',
      'failed to attach uprobe SSL_read in y: symbol not found',
    );
    expect(messageWithReason(said)).toBe(said.message);
    expect(messageWithReason(new LabError('client-failed', 'client exited with code 1'))).toBe('client exited with code 1');
  });
});

describe('outputError', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  it.each([
    ['an fs error with code ENOSPC', enospc, /^cannot write the folder: no space left on the device \(ENOSPC/],
    ['an fs error with code EROFS', Object.assign(new Error('EROFS: read-only file system, open'), { code: 'EROFS' }), /read-only file system/],
    [
      'an internal LabError naming ENOSPC (a fetch that failed)',
      new LabError('internal', 'failed to fetch /tmp/x from local: ENOSPC: no space left on device, copyfile'),
      /no space left on the device/,
    ],
  ])('%s -> output-failed', (_name, err, re) => {
    const e = outputError(err, 'the folder');
    expect(e?.kind).toBe('output-failed');
    expect(e?.message).toMatch(re);
  });
  it.each([
    ['ENOENT', Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' })],
    ['a tracer failure that mentions ENOSPC', new LabError('tracer-failed', 'failed to create map: ENOSPC')],
    ['a word that only contains the code', new Error('XENOSPCX')],
  ])('%s -> null', (_name, err) => {
    expect(outputError(err, 'the folder')).toBeNull();
  });
});
