// USM-style tuple normalisation: the ephemeral side is the client; pid and netns are dropped,
// so a client and a server that see the same connection collapse onto one key.

export interface Endpoint {
  ip: string;
  port: number;
}

export interface NormTuple {
  client: Endpoint;
  server: Endpoint;
}

export const EPHEMERAL_MIN = 32768;
export const EPHEMERAL_MAX = 60999;

export function isEphemeral(port: number): boolean {
  return port >= EPHEMERAL_MIN && port <= EPHEMERAL_MAX;
}

export function normalize(t: { saddr: string; sport: number; daddr: string; dport: number }): NormTuple {
  const src = { ip: t.saddr, port: t.sport };
  const dst = { ip: t.daddr, port: t.dport };
  const se = isEphemeral(t.sport);
  const de = isEphemeral(t.dport);
  let srcIsClient: boolean;
  if (se !== de) srcIsClient = se;
  else srcIsClient = t.sport > t.dport || (t.sport === t.dport && t.saddr >= t.daddr); // lower port = server
  return srcIsClient ? { client: src, server: dst } : { client: dst, server: src };
}

export function tupleKey(n: NormTuple): string {
  return `${n.client.ip}:${n.client.port}>${n.server.ip}:${n.server.port}`;
}
