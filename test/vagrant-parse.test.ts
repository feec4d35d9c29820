// The vagrant backend's pure parts: machine-readable rows, ssh-config, the per-machine queue.
import { describe, expect, it } from 'vitest';
import { parseBoxList, parseErrorExit, parseMachineReadable, parseSshConfig, parseStatus, unescapeField } from '../src/backends/vagrant/parse.ts';
import { CommandQueue } from '../src/backends/vagrant/queue.ts';

// Captured from Vagrant 2.3.4 + vagrant-libvirt 0.11.2 (`vagrant status --machine-readable`).
const STATUS = `1795543299,a,metadata,provider,libvirt
1795543299,b,metadata,provider,libvirt
1795543300,a,provider-name,libvirt
1795543300,a,state,not_created
1795543300,a,state-human-short,not created
1795543300,a,state-human-long,The Libvirt domain is not created. Run \`vagrant up\` to create it.
1795543300,b,provider-name,libvirt
1795543300,b,state,running
1795543300,b,state-human-short,running
1795543300,,ui,info,Current machine states:\\n\\na                         not created (libvirt)\\nb                         running (libvirt)\\n\\nThis environment represents multiple VMs. The VMs are all listed\\nabove with their current state. For more information about a specific\\nVM%!(VAGRANT_COMMA) run \`vagrant status NAME\`.
`;

describe('machine-readable output', () => {
  it.each([
    ['plain', 'running', 'running'],
    ['comma', 'a%!(VAGRANT_COMMA) b', 'a, b'],
    ['two commas', '%!(VAGRANT_COMMA)%!(VAGRANT_COMMA)', ',,'],
    ['newline', 'line1\\nline2', 'line1\nline2'],
    ['carriage return', 'x\\r\\ny', 'x\r\ny'],
    ['empty', '', ''],
  ])('unescapes a field: %s', (_name, raw, want) => {
    expect(unescapeField(raw)).toBe(want);
  });

  it.each([
    ['a state row', '1700000000,bookworm,state,running', [{ ts: 1700000000, target: 'bookworm', type: 'state', data: ['running'] }]],
    ['several data fields', '1,a,metadata,provider,libvirt', [{ ts: 1, target: 'a', type: 'metadata', data: ['provider', 'libvirt'] }]],
    ['an environment row (empty target)', '5,,ui,warn,careful%!(VAGRANT_COMMA) now', [{ ts: 5, target: '', type: 'ui', data: ['warn', 'careful, now'] }]],
    ['a row without data', '7,a,action', [{ ts: 7, target: 'a', type: 'action', data: [] }]],
    [
      'CRLF line ends',
      '1,a,state,running\r\n2,b,state,shutoff\r\n',
      [
        { ts: 1, target: 'a', type: 'state', data: ['running'] },
        { ts: 2, target: 'b', type: 'state', data: ['shutoff'] },
      ],
    ],
    [
      'noise lines are ignored',
      'Vagrant failed to initialize\n==> a: Creating\n1,a,state,running\n',
      [{ ts: 1, target: 'a', type: 'state', data: ['running'] }],
    ],
    ['empty output', '', []],
  ])('parses %s', (_name, text, rows) => {
    expect(parseMachineReadable(text)).toEqual(rows);
  });

  it('reads machine states from vagrant status', () => {
    const s = parseStatus(STATUS);
    expect([...s.entries()]).toEqual([
      ['a', 'not_created'],
      ['b', 'running'],
    ]);
  });

  it('keeps the ui text with its commas and newlines', () => {
    const ui = parseMachineReadable(STATUS).find((r) => r.type === 'ui')!;
    expect(ui.data[0]).toBe('info');
    expect(ui.data[1]).toContain('VM, run `vagrant status NAME`.');
    expect(ui.data[1]!.split('\n')[2]).toMatch(/^a\s+not created \(libvirt\)$/);
  });

  it.each([
    ['no error', STATUS, null],
    [
      'an error-exit row',
      '1,,ui,error,The provider ... not yet ready for SSH.\n1,,error-exit,Vagrant::Errors::SSHNotReady,The provider%!(VAGRANT_COMMA) is not\\nready',
      { kind: 'Vagrant::Errors::SSHNotReady', message: 'The provider, is not\nready' },
    ],
  ])('finds the error-exit row: %s', (_n, text, want) => {
    expect(parseErrorExit(text)).toEqual(want);
  });

  it('lists boxes with provider and version', () => {
    const text = [
      '1,,box-name,usm-lab/bookworm',
      '1,,box-provider,libvirt',
      '1,,box-version,1.20250101.0',
      '1,,box-info,',
      '1,,box-name,generic/debian12',
      '1,,box-provider,virtualbox',
      '1,,box-version,4.3.12',
    ].join('\n');
    expect(parseBoxList(text)).toEqual([
      { name: 'usm-lab/bookworm', provider: 'libvirt', version: '1.20250101.0' },
      { name: 'generic/debian12', provider: 'virtualbox', version: '4.3.12' },
    ]);
    expect(parseBoxList('1,,ui,warn,There are no installed boxes!')).toEqual([]);
  });
});

describe('ssh-config', () => {
  const ONE = `Host bookworm
  HostName 127.0.0.1
  User root
  Port 42201
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /root/.cache/usm-race-lab/ssh/id_ed25519
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa
`;

  it.each([
    [
      'one host (vagrant-libvirt, sandboxed)',
      ONE,
      [{ host: 'bookworm', hostName: '127.0.0.1', user: 'root', port: 42201, identityFiles: ['/root/.cache/usm-race-lab/ssh/id_ed25519'] }],
    ],
    [
      'two hosts, quoted key path with a space, several keys',
      `Host a\n  HostName 10.0.0.5\n  User vagrant\n  Port 22\n  IdentityFile "/home/me/my keys/a"\n  IdentityFile /home/me/.vagrant.d/insecure_private_key\n\nHost b\n  HostName 127.0.0.1\n  User vagrant\n  Port 2200\n`,
      [
        { host: 'a', hostName: '10.0.0.5', user: 'vagrant', port: 22, identityFiles: ['/home/me/my keys/a', '/home/me/.vagrant.d/insecure_private_key'] },
        { host: 'b', hostName: '127.0.0.1', user: 'vagrant', port: 2200, identityFiles: [] },
      ],
    ],
    [
      'case-insensitive keys and key=value',
      'host x\n  hostname=h\n  USER u\n  port=2222\n',
      [{ host: 'x', hostName: 'h', user: 'u', port: 2222, identityFiles: [] }],
    ],
    [
      'comments and CRLF',
      '# generated\r\nHost y\r\n  HostName h\r\n  User u\r\n  Port 1\r\n',
      [{ host: 'y', hostName: 'h', user: 'u', port: 1, identityFiles: [] }],
    ],
    ['nothing', '', []],
  ])('parses %s', (_n, text, want) => {
    expect(parseSshConfig(text)).toEqual(want);
  });

  it.each([
    ['no port', 'Host a\n  HostName h\n  User u\n'],
    ['port not a number', 'Host a\n  HostName h\n  User u\n  Port ssh\n'],
    ['port out of range', 'Host a\n  HostName h\n  User u\n  Port 70000\n'],
    ['no user', 'Host a\n  HostName h\n  Port 22\n'],
  ])('refuses a block with %s, naming the host', (_n, text) => {
    expect(() => parseSshConfig(text)).toThrow(/Host a lacks a usable HostName, User or Port/);
  });
});

describe('per-machine command queue', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('runs commands one at a time, in the order asked (node-vagrant runs them LIFO)', async () => {
    const q = new CommandQueue();
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const cmd = (name: string, ms: number) =>
      q.run(async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        log.push(`start ${name}`);
        await sleep(ms);
        log.push(`end ${name}`);
        running--;
        return name;
      });
    const results = await Promise.all([cmd('up', 30), cmd('status', 5), cmd('ssh-config', 1), cmd('destroy', 10)]);
    expect(results).toEqual(['up', 'status', 'ssh-config', 'destroy']);
    expect(maxRunning).toBe(1);
    expect(log).toEqual(['start up', 'end up', 'start status', 'end status', 'start ssh-config', 'end ssh-config', 'start destroy', 'end destroy']);
  });

  it('a failing command rejects its caller only; the next one still runs', async () => {
    const q = new CommandQueue();
    const a = q.run(async () => {
      throw new Error('up failed');
    });
    const b = q.run(async () => 'destroyed');
    await expect(a).rejects.toThrow('up failed');
    await expect(b).resolves.toBe('destroyed');
    expect(q.size).toBe(0);
  });

  it('a synchronous throw inside a command is a rejection, not a crash', async () => {
    const q = new CommandQueue();
    const a = q.run(() => {
      throw new Error('boom');
    });
    await expect(a).rejects.toThrow('boom');
    await expect(q.run(async () => 1)).resolves.toBe(1);
  });

  it('counts pending commands and reports idle', async () => {
    const q = new CommandQueue();
    void q.run(() => sleep(20));
    void q.run(() => sleep(1));
    expect(q.size).toBe(2);
    await q.idle();
    expect(q.size).toBe(0);
  });

  it('separate queues (separate machines) run in parallel', async () => {
    const a = new CommandQueue();
    const b = new CommandQueue();
    const t0 = Date.now();
    await Promise.all([a.run(() => sleep(60)), b.run(() => sleep(60))]);
    expect(Date.now() - t0).toBeLessThan(110);
  });
});
