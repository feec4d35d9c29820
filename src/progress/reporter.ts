// The one place that prints progress: an ora spinner on a terminal (one line naming each
// target's current step), plain lines elsewhere (CI logs). Failed steps show their saved log.
import ora, { type Ora } from 'ora';
import { readFileSync } from 'node:fs';
import type { ProgressEvent } from './events.ts';

export interface Reporter {
  emit: (ev: ProgressEvent) => void;
  stop: () => void;
}

export function createReporter(stream: NodeJS.WriteStream = process.stderr): Reporter {
  const tty = Boolean(stream.isTTY) && process.env.CI !== 'true';
  const current = new Map<string, string>();
  const spinner: Ora | null = tty ? ora({ stream, text: 'starting' }).start() : null;
  const line = (s: string) => {
    if (spinner) {
      spinner.clear();
      stream.write(s + '\n');
      spinner.render();
    } else stream.write(s + '\n');
  };
  const refresh = () => {
    if (spinner) spinner.text = [...current].map(([t, s]) => `${t}: ${s}`).join('  |  ') || 'working';
  };
  const showLog = (file: string) => {
    try {
      const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
      if (text) line(`    --- last lines of ${file}\n${text.replace(/^/gm, '    ')}`);
    } catch {
      /* no log */
    }
  };
  return {
    emit(ev) {
      switch (ev.type) {
        case 'step-start':
          current.set(ev.target, ev.detail ? `${ev.step} ${ev.detail}` : ev.step);
          if (!spinner) line(`[${ev.target}] ${ev.step}${ev.detail ? ` ${ev.detail}` : ''} ...`);
          refresh();
          break;
        case 'step-end': {
          const secs = (ev.ms / 1000).toFixed(1);
          if (ev.ok) {
            if (!spinner) line(`[${ev.target}] ${ev.step} ok (${secs} s)`);
          } else {
            line(`✖ [${ev.target}] ${ev.step} failed after ${secs} s: ${ev.detail ?? ''}`);
            if (ev.logFile) showLog(ev.logFile);
          }
          current.set(ev.target, `${ev.step} ${ev.ok ? 'done' : 'failed'}`);
          refresh();
          break;
        }
        case 'info':
          line(`[${ev.target}] ${ev.message}`);
          break;
        case 'reused':
          line(`[${ev.target}] ${ev.cells} of ${ev.of} cells reused (inputs unchanged)${ev.boot ? '' : ': not booted'}`);
          break;
        case 'warn':
          line(`! [${ev.target}] ${ev.message}`);
          break;
      }
    },
    stop() {
      spinner?.stop();
    },
  };
}
