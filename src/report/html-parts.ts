// Small pieces of summary.html: escaping, relative links, the sparkline SVG.
import { relative, sep } from 'node:path';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text and attribute values alike. */
export function esc(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (ch) => ESC[ch]!);
}

/** A link from the page's folder to a file, each segment percent-encoded, then escaped. */
export function href(fromDir: string, file: string): string {
  return esc(relative(fromDir, file).split(sep).map(encodeURIComponent).join('/'));
}

/** A tiny SVG line of the last nights' rates; failed nights are a cross on the baseline. */
export function sparkline(points: readonly (number | null | 'failed')[], w = 72, h = 18): string {
  if (points.length < 2) return '';
  const x = (i: number) => (points.length === 1 ? w / 2 : 2 + (i * (w - 4)) / (points.length - 1));
  const y = (r: number) => h - 2 - r * (h - 4);
  const segs: string[] = [];
  let cur: string[] = [];
  const marks: string[] = [];
  points.forEach((p, i) => {
    if (typeof p === 'number') cur.push(`${x(i).toFixed(1)},${y(p).toFixed(1)}`);
    else {
      if (cur.length) segs.push(cur.join(' '));
      cur = [];
      if (p === 'failed') marks.push(`<path d="M${(x(i) - 2).toFixed(1)},${h - 4} l4,4 m0,-4 l-4,4" stroke="#b00" stroke-width="1"/>`);
    }
  });
  if (cur.length) segs.push(cur.join(' '));
  const last = points.at(-1);
  const dot = typeof last === 'number' ? `<circle cx="${x(points.length - 1).toFixed(1)}" cy="${y(last).toFixed(1)}" r="2" fill="#b00"/>` : '';
  const lines = segs.map((s) =>
    s.includes(' ')
      ? `<polyline points="${s}" fill="none" stroke="#333" stroke-width="1"/>`
      : `<circle cx="${s.split(',')[0]}" cy="${s.split(',')[1]}" r="1.2" fill="#333"/>`,
  );
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="misattribution over the last ${points.length} runs">${lines.join('')}${marks.join('')}${dot}</svg>`;
}
