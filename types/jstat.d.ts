// The part of jstat (no published types) that src/analysis/interval.ts uses.
declare module 'jstat' {
  export const jStat: {
    normal: { inv(p: number, mean: number, sd: number): number };
    studentt: { inv(p: number, dof: number): number };
  };
  const jstat: { jStat: typeof jStat };
  export default jstat;
}
