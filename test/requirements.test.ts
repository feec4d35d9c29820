// The CI switch of the end-to-end tests: any CI value a CI engine sets makes a missing
// requirement fail instead of skip.
import { describe, expect, it } from 'vitest';
import { isCI } from './helpers/requirements.ts';

describe('isCI', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['0', false],
    ['false', false],
    ['FALSE', false],
    [' false ', false],
    ['true', true],
    ['1', true],
    ['yes', true],
    ['TRUE', true],
    ['woodpecker', true],
  ] as const)('CI=%j -> %s', (value, want) => {
    expect(isCI(value)).toBe(want);
  });
});
