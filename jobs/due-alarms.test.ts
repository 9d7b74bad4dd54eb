import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { createDueAlarms } from './due-alarms.ts';

describe('due alarms', () => {
  it('wake the watching loops once a delayed job is due, after the margin', (context) => {
    context.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const woken: string[] = [];
    const alarms = createDueAlarms((id) => woken.push(id), { marginMs: 10 }, () => Date.now());
    alarms.watch('poll', 'loop-a');
    alarms.delayed('poll', 800);
    context.mock.timers.tick(809);
    assert.deepEqual(woken, [], 'not before the due time and its margin');
    context.mock.timers.tick(1);
    assert.deepEqual(woken, ['loop-a']);
  });

  it('share one wake among jobs due within one margin, and wake only the queue they are in', (context) => {
    context.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 2_000_000 });
    const woken: string[] = [];
    const alarms = createDueAlarms((id) => woken.push(id), { marginMs: 10 }, () => Date.now());
    alarms.watch('poll', 'poll-loop');
    alarms.watch('create', 'create-loop');
    alarms.delayed('poll', 502);
    alarms.delayed('poll', 508);
    alarms.delayed('poll', 700);
    context.mock.timers.tick(1_000);
    assert.deepEqual(woken, ['poll-loop', 'poll-loop']);
  });

  it('set nothing for a queue no loop here watches, or a job not delayed, and clear all on stop', (context) => {
    context.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 3_000_000 });
    const wake = mock.fn();
    const alarms = createDueAlarms(wake, { marginMs: 10 }, () => Date.now());
    alarms.delayed('finish', 100);
    alarms.watch('poll', 'loop');
    alarms.delayed('poll', 0);
    alarms.delayed('poll', 100);
    alarms.stop();
    context.mock.timers.tick(1_000);
    assert.equal(wake.mock.callCount(), 0);
  });
});
