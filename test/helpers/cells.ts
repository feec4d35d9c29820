// The properties every end-to-end test asserts on a summary.json cell, in one place.
import { expect } from 'vitest';

export interface SummaryCell {
  variant: string;
  reads: string;
  cpus: number;
  rowsPerRequest: number | null;
  byConn: { k: number; rport: number; rightRows: number; wrongRows: number }[];
  mode: string;
  scenario: string;
  kernel: string;
  expected: number;
  captured: number;
  correct: number;
  wrong: number;
  misattribution: number | null;
  capture: number | null;
  symmetry: number | null;
  status: string;
  truth: { writes: { correct: number; wrong: number; lost: number } };
}

/** upstream on pre-existing connections, every libssl user traced: the client side is
 * permanently swapped, symmetrically; the servers' own (right) rows sit beside: about half. */
export function expectPermanentSwap(e: SummaryCell, iterations: number): void {
  expect(e.captured).toBeGreaterThan(iterations); // not luck: many rows
  expect(e.truth.writes.wrong).toBeGreaterThanOrEqual(0.9 * e.expected);
  expect(e.truth.writes.correct).toBe(0);
  expect(e.symmetry).toBeGreaterThanOrEqual(0.8);
  expect(e.misattribution).toBeGreaterThanOrEqual(0.45);
}

/** scoped on pre-existing connections: nothing wrong, (nearly) everything captured. */
export function expectScopedFix(e: SummaryCell): void {
  expect(e.wrong).toBe(0);
  expect(e.capture).toBeGreaterThanOrEqual(0.95);
}

/** upstream with full reads and servers traced: MODEL.md's consequence of upstream's HTTP layer on a
 * permanently swapped pair, whatever the timing: exactly half the rows wrong, two rows per request. */
export function expectHalfAtTwoRows(e: SummaryCell): void {
  expect(Math.abs(e.misattribution! - 0.5)).toBeLessThanOrEqual(0.02);
  expect(e.rowsPerRequest).toBeGreaterThanOrEqual(1.8);
  expect(e.rowsPerRequest).toBeLessThanOrEqual(2.05);
}

/** upstream with the investigation's read pattern (one SSL_read per request): the client falls
 * behind, about one row per request, and wrong rows. No rate band: the noise can cross one. */
export function expectSingleReadRace(e: SummaryCell): void {
  expect(e.reads).toBe('single');
  expect(e.wrong).toBeGreaterThan(0);
  expect(e.rowsPerRequest).toBeLessThan(1.5);
}
