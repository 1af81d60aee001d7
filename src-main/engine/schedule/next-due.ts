/**
 * When a schedule is due next: a pure function of its frequency, a moment, and a calendar that
 * maps instants to local wall-clock fields and back. Production uses the process's local time
 * zone (`systemCalendar`); tests use fixed-offset zones so results do not depend on the machine.
 *
 * Invariants: `nextDue(f, t, c) > t` always; the result is the first slot after t, so a
 * scheduler that asks with t = now after a run skips every slot it missed (catch-up runs once,
 * not once per missed slot). Wall-clock fields overflow the way Date.UTC does (day 32 → next
 * month, month 12 → next year), which is what makes month and year boundaries correct. Where a
 * zone has daylight saving, a local time that does not exist (spring forward) resolves to the
 * instant the platform gives (usually an hour later), and one that exists twice to the first.
 */
import type { ScheduleFrequency } from '../../../src-shared/contract';

export interface WallClock {
  year: number;
  /** 0–11, may overflow when passed to `toInstant`. */
  month: number;
  /** 1–31, may overflow when passed to `toInstant`. */
  day: number;
  hour: number;
  minute: number;
  /** 0 = Sunday … 6 = Saturday (ignored by `toInstant`). */
  weekday: number;
}

export interface Calendar {
  fields(ms: number): WallClock;
  toInstant(w: Omit<WallClock, 'weekday'>): number;
}

/** The process's local time zone (what the person set on the machine). */
export const systemCalendar: Calendar = {
  fields(ms) {
    const d = new Date(ms);
    return { year: d.getFullYear(), month: d.getMonth(), day: d.getDate(), hour: d.getHours(), minute: d.getMinutes(), weekday: d.getDay() };
  },
  toInstant: (w) => new Date(w.year, w.month, w.day, w.hour, w.minute, 0, 0).getTime(),
};

/** A zone at a fixed offset from UTC (minutes east, e.g. +330 for India): local time without daylight saving. */
export function fixedOffsetCalendar(offsetMinutes: number): Calendar {
  const shift = offsetMinutes * 60_000;
  return {
    fields(ms) {
      const d = new Date(ms + shift);
      return { year: d.getUTCFullYear(), month: d.getUTCMonth(), day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), weekday: d.getUTCDay() };
    },
    toInstant: (w) => Date.UTC(w.year, w.month, w.day, w.hour, w.minute) - shift,
  };
}

/** "02:30" → [2, 30]; the contract has validated the shape. */
export function parseTimeOfDay(at: string): [hour: number, minute: number] {
  const [h, m] = at.split(':').map(Number);
  return [h!, m!];
}

/** The first slot of `f` strictly after `afterMs`. */
export function nextDue(f: ScheduleFrequency, afterMs: number, cal: Calendar = systemCalendar): number {
  const now = cal.fields(afterMs);
  const at = (dayOffset: number, hour: number, minute: number) =>
    cal.toInstant({ year: now.year, month: now.month, day: now.day + dayOffset, hour, minute });
  switch (f.every) {
    case 'hour': {
      // Hourly slots step in absolute time from the first one, so a zone's 30- or 45-minute offset and DST both come out right.
      let t = cal.toInstant({ year: now.year, month: now.month, day: now.day, hour: now.hour, minute: f.minute });
      while (t <= afterMs) t += 3_600_000;
      while (t - 3_600_000 > afterMs) t -= 3_600_000;
      return t;
    }
    case 'day': {
      const [h, m] = parseTimeOfDay(f.at);
      for (let d = 0; ; d++) {
        const t = at(d, h, m);
        if (t > afterMs) return t;
      }
    }
    case 'week': {
      const [h, m] = parseTimeOfDay(f.at);
      const first = (f.weekday - now.weekday + 7) % 7;
      for (let d = first; ; d += 7) {
        const t = at(d, h, m);
        if (t > afterMs) return t;
      }
    }
  }
}

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** "every day at 02:30", "every hour at :15", "every Monday at 18:00". */
export function describeFrequency(f: ScheduleFrequency): string {
  if (f.every === 'hour') return `every hour at :${String(f.minute).padStart(2, '0')}`;
  if (f.every === 'day') return `every day at ${f.at}`;
  return `every ${WEEKDAYS[f.weekday]} at ${f.at}`;
}
