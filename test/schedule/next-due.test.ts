import { describe, expect, it } from 'vitest';
import { describeFrequency, fixedOffsetCalendar, nextDue } from '../../src-main/engine/schedule/next-due';

// Local wall-clock instants in a fixed-offset zone (no daylight saving), written as ISO with offset.
const at = (isoWithOffset: string) => Date.parse(isoWithOffset);
const utc = fixedOffsetCalendar(0);
const india = fixedOffsetCalendar(330); // +05:30
const pacific = fixedOffsetCalendar(-480); // −08:00 (no DST in this calendar)
const nepal = fixedOffsetCalendar(345); // +05:45

describe('nextDue', () => {
  it('daily: later today when the time has not come yet, else tomorrow; never the same instant', () => {
    const f = { every: 'day', at: '02:30' } as const;
    expect(nextDue(f, at('2025-03-10T01:00:00Z'), utc)).toBe(at('2025-03-10T02:30:00Z'));
    expect(nextDue(f, at('2025-03-10T02:30:00Z'), utc)).toBe(at('2025-03-11T02:30:00Z'));
    expect(nextDue(f, at('2025-03-10T02:29:59.999Z'), utc)).toBe(at('2025-03-10T02:30:00Z'));
  });

  it('daily: in local time of a zone with a half-hour offset, across the UTC date line of that zone', () => {
    const f = { every: 'day', at: '02:30' } as const;
    // 23:00 UTC on the 9th is 04:30 on the 10th in India → next 02:30 local is on the 11th.
    expect(nextDue(f, at('2025-03-09T23:00:00Z'), india)).toBe(at('2025-03-11T02:30:00+05:30'));
    expect(nextDue(f, at('2025-03-09T20:00:00Z'), india)).toBe(at('2025-03-10T02:30:00+05:30'));
    // 18:00 local in the Pacific on the 9th is 02:00 UTC on the 10th.
    expect(nextDue({ every: 'day', at: '18:00' }, at('2025-03-10T01:59:00Z'), pacific)).toBe(at('2025-03-09T18:00:00-08:00'));
  });

  it('daily: crosses month, leap-day and year boundaries', () => {
    const f = { every: 'day', at: '00:00' } as const;
    expect(nextDue(f, at('2025-01-31T12:00:00Z'), utc)).toBe(at('2025-02-01T00:00:00Z'));
    expect(nextDue(f, at('2024-02-28T12:00:00Z'), utc)).toBe(at('2024-02-29T00:00:00Z'));
    expect(nextDue(f, at('2025-02-28T12:00:00Z'), utc)).toBe(at('2025-03-01T00:00:00Z'));
    expect(nextDue({ every: 'day', at: '23:59' }, at('2025-12-31T23:59:00Z'), utc)).toBe(at('2026-01-01T23:59:00Z'));
    expect(nextDue(f, at('2025-12-31T23:00:00+05:30'), india)).toBe(at('2026-01-01T00:00:00+05:30'));
  });

  it('weekly: the named weekday at the time, this week or next, across month and year ends', () => {
    const monday1800 = { every: 'week', weekday: 1, at: '18:00' } as const;
    // 2025-03-10 is a Monday.
    expect(nextDue(monday1800, at('2025-03-10T17:00:00Z'), utc)).toBe(at('2025-03-10T18:00:00Z'));
    expect(nextDue(monday1800, at('2025-03-10T18:00:00Z'), utc)).toBe(at('2025-03-17T18:00:00Z'));
    expect(nextDue(monday1800, at('2025-03-12T09:00:00Z'), utc)).toBe(at('2025-03-17T18:00:00Z'));
    // Wednesday 2025-12-31 → Monday 2026-01-05.
    expect(nextDue(monday1800, at('2025-12-31T09:00:00Z'), utc)).toBe(at('2026-01-05T18:00:00Z'));
    // Saturday 2025-05-31 → Sunday 2025-06-01 (month boundary).
    expect(nextDue({ every: 'week', weekday: 0, at: '03:00' }, at('2025-05-31T12:00:00Z'), utc)).toBe(at('2025-06-01T03:00:00Z'));
  });

  it('weekly: the weekday is the local one, not UTC’s', () => {
    // Monday 01:00 in India is still Sunday 19:30 UTC: a Monday 02:00 slot is 1 h away, not a week.
    const monday0200 = { every: 'week', weekday: 1, at: '02:00' } as const;
    expect(nextDue(monday0200, at('2025-03-10T01:00:00+05:30'), india)).toBe(at('2025-03-10T02:00:00+05:30'));
    // Sunday 20:00 in the Pacific is Monday 04:00 UTC: Monday 02:00 local is still ahead.
    expect(nextDue(monday0200, at('2025-03-09T20:00:00-08:00'), pacific)).toBe(at('2025-03-10T02:00:00-08:00'));
  });

  it('hourly: at the minute past each local hour, in zones with 30- and 45-minute offsets too', () => {
    const quarterPast = { every: 'hour', minute: 15 } as const;
    expect(nextDue(quarterPast, at('2025-03-10T10:05:00Z'), utc)).toBe(at('2025-03-10T10:15:00Z'));
    expect(nextDue(quarterPast, at('2025-03-10T10:15:00Z'), utc)).toBe(at('2025-03-10T11:15:00Z'));
    expect(nextDue(quarterPast, at('2025-03-10T23:50:00Z'), utc)).toBe(at('2025-03-11T00:15:00Z'));
    expect(nextDue(quarterPast, at('2025-03-10T10:20:00+05:30'), india)).toBe(at('2025-03-10T11:15:00+05:30'));
    expect(nextDue({ every: 'hour', minute: 0 }, at('2025-03-10T10:50:00+05:45'), nepal)).toBe(at('2025-03-10T11:00:00+05:45'));
    expect(nextDue({ every: 'hour', minute: 0 }, at('2025-12-31T23:30:00Z'), utc)).toBe(at('2026-01-01T00:00:00Z'));
  });

  it('is always strictly after the given instant and the first such slot', () => {
    const freqs = [{ every: 'hour', minute: 7 }, { every: 'day', at: '13:45' }, { every: 'week', weekday: 4, at: '00:10' }] as const;
    for (const cal of [utc, india, pacific, nepal])
      for (const f of freqs)
        for (let t = at('2025-01-01T00:00:00Z'); t < at('2025-01-20T00:00:00Z'); t += 37 * 60_000 + 11_000) {
          const n = nextDue(f, t, cal);
          expect(n).toBeGreaterThan(t);
          const period = f.every === 'hour' ? 3_600_000 : f.every === 'day' ? 86_400_000 : 7 * 86_400_000;
          expect(n - t).toBeLessThanOrEqual(period);
          expect(nextDue(f, n - 1, cal)).toBe(n);
        }
  });

  it('describes frequencies for people', () => {
    expect(describeFrequency({ every: 'hour', minute: 5 })).toBe('every hour at :05');
    expect(describeFrequency({ every: 'day', at: '02:30' })).toBe('every day at 02:30');
    expect(describeFrequency({ every: 'week', weekday: 1, at: '18:00' })).toBe('every Monday at 18:00');
  });
});
