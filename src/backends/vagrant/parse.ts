// Pure parsers for what the vagrant CLI prints: `--machine-readable` rows and `vagrant ssh-config`.
// No I/O here: tested with tables of cases (test/vagrant-parse.test.ts).

/** One `--machine-readable` row: `timestamp,target,type,data...` (data may have several fields). */
export interface MachineReadableRow {
  ts: number;
  /** Machine name; '' for rows about the whole environment (ui, error-exit). */
  target: string;
  type: string;
  data: string[];
}

/**
 * Vagrant escapes commas inside a field as `%!(VAGRANT_COMMA)` and newlines as a literal `\n`
 * (backslash + n); `\r` likewise.
 */
export function unescapeField(s: string): string {
  return s
    .replace(/%!\(VAGRANT_COMMA\)/g, ',')
    .replace(/\\n/g, '\n')
    .replace(/\\r/g, '\r');
}

/** Parse `--machine-readable` output; lines that are not rows (plugin warnings...) are ignored. */
export function parseMachineReadable(text: string): MachineReadableRow[] {
  const rows: MachineReadableRow[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    const m = /^(\d+),([^,]*),([^,]+)(?:,(.*))?$/.exec(line);
    if (!m) continue;
    rows.push({
      ts: Number(m[1]),
      target: m[2]!,
      type: m[3]!,
      data: m[4] === undefined ? [] : m[4].split(',').map(unescapeField),
    });
  }
  return rows;
}

/** Vagrant machine states we act on; anything else is kept verbatim. */
export type MachineState = 'not_created' | 'running' | 'shutoff' | 'paused' | 'preparing' | 'unknown' | (string & {});

/** `vagrant status --machine-readable`: machine name -> state (the `state` rows). */
export function parseStatus(text: string): Map<string, MachineState> {
  const out = new Map<string, MachineState>();
  for (const r of parseMachineReadable(text)) {
    if (r.type === 'state' && r.target && r.data[0]) out.set(r.target, r.data[0]);
  }
  return out;
}

/** The `error-exit` row, if the command failed in a way Vagrant reports (class + message). */
export function parseErrorExit(text: string): { kind: string; message: string } | null {
  const r = parseMachineReadable(text).find((x) => x.type === 'error-exit');
  if (!r) return null;
  return { kind: r.data[0] ?? 'unknown', message: r.data.slice(1).join(',').trim() };
}

/** `vagrant box list --machine-readable`: one entry per (name, provider, version). */
export interface BoxListEntry {
  name: string;
  provider: string;
  version: string;
}

export function parseBoxList(text: string): BoxListEntry[] {
  const out: BoxListEntry[] = [];
  let cur: Partial<BoxListEntry> = {};
  for (const r of parseMachineReadable(text)) {
    const v = r.data[0] ?? '';
    if (r.type === 'box-name') cur = { name: v };
    else if (r.type === 'box-provider') cur.provider = v;
    else if (r.type === 'box-version') {
      cur.version = v;
      if (cur.name && cur.provider) out.push({ name: cur.name, provider: cur.provider, version: v });
    }
  }
  return out;
}

/** One `Host` block of `vagrant ssh-config`. */
export interface SshConfigEntry {
  host: string;
  hostName: string;
  user: string;
  port: number;
  identityFiles: string[];
}

/**
 * Parse `vagrant ssh-config` (OpenSSH client config syntax: `Key value`, case-insensitive keys,
 * values optionally in double quotes). Throws when a Host block lacks HostName, User or Port.
 */
export function parseSshConfig(text: string): SshConfigEntry[] {
  const blocks: { host: string; kv: Map<string, string[]> }[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    const value = unquote(m[2]!.trim());
    if (key === 'host') {
      blocks.push({ host: value, kv: new Map() });
      continue;
    }
    const b = blocks.at(-1);
    if (!b) continue; // options before the first Host: not ours
    const list = b.kv.get(key) ?? [];
    list.push(value);
    b.kv.set(key, list);
  }
  return blocks.map(({ host, kv }) => {
    const one = (k: string) => kv.get(k)?.[0];
    const hostName = one('hostname');
    const user = one('user');
    const portText = one('port');
    const port = Number(portText);
    if (!hostName || !user || !portText || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`vagrant ssh-config: Host ${host} lacks a usable HostName, User or Port`);
    }
    return { host, hostName, user, port, identityFiles: kv.get('identityfile') ?? [] };
  });
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1);
  return v;
}
