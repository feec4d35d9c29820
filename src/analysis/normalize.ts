// USM-style tuple normalisation, as upstream's normalize_tuple (port_range.h): the ephemeral side
// is the client; pid and netns are dropped, so a client and a server that see the same connection
// collapse onto one key.

export interface Endpoint {
  ip: string;
  port: number;
}

export interface NormTuple {
  client: Endpoint;
  server: Endpoint;
}

/** Upstream's compiled-in range (EPHEMERAL_RANGE_BEG/END), Linux's default ip_local_port_range. */
export const EPHEMERAL_MIN = 32768;
export const EPHEMERAL_MAX = 60999;

export function isEphemeral(port: number): boolean {
  return port >= EPHEMERAL_MIN && port <= EPHEMERAL_MAX;
}

/**
 * Upstream: keep the tuple when only the source port is ephemeral; flip it when only the
 * destination port is, or when (both or neither ephemeral) the destination port is the higher
 * one. So outside the one-sided cases the lower port is the server. Equal ports are never
 * flipped and addresses are never compared: the two sides of an equal-port connection stay two
 * keys, each with its own observed source as "client" (upstream has no tie-break either).
 */
export function normalize(t: { saddr: string; sport: number; daddr: string; dport: number }): NormTuple {
  const src = { ip: t.saddr, port: t.sport };
  const dst = { ip: t.daddr, port: t.dport };
  const se = isEphemeral(t.sport);
  const de = isEphemeral(t.dport);
  if (se && !de) return { client: src, server: dst };
  const flip = (!se && de) || t.dport > t.sport;
  return flip ? { client: dst, server: src } : { client: src, server: dst };
}

export function tupleKey(n: NormTuple): string {
  return `${n.client.ip}:${n.client.port}>${n.server.ip}:${n.server.port}`;
}

/** The incomplete-parts joiner groups by the client endpoint only (upstream's key: SrcIP, SrcPort). */
export function clientKey(n: NormTuple): string {
  return `${n.client.ip}:${n.client.port}`;
}
