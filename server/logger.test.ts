import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REDACTED, createLogger } from './logger.ts';

const capture = (level: 'debug' | 'info' | 'warn' | 'error' = 'info') => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level, base: { role: 'all' }, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
};

describe('logger', () => {
  it('writes one JSON object per line, with level name, ISO time, message and fields', () => {
    const { logger, lines } = capture();
    logger.info('request', { requestId: 'r-1', durationMs: 3 });
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.level, 'info');
    assert.equal(line?.msg, 'request');
    assert.equal(line?.requestId, 'r-1');
    assert.equal(line?.role, 'all');
    assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT/);
  });

  it('drops lines below its level', () => {
    const { logger, lines } = capture('warn');
    logger.debug('a');
    logger.info('b');
    logger.warn('c');
    assert.deepEqual(lines.map((line) => line.msg), ['c']);
  });

  it('binds fields to child loggers', () => {
    const { logger, lines } = capture();
    logger.child({ generationId: 'g-1' }).child({ phase: 'create' }).info('phase');
    assert.equal(lines[0]?.generationId, 'g-1');
    assert.equal(lines[0]?.phase, 'create');
  });

  it('redacts credentials by field name, at the top and one level down', () => {
    const { logger, lines } = capture();
    logger.info('careless', { authorization: 'Bearer kiln_sk_123', headers: { authorization: 'Bearer kiln_sk_123' }, apiKey: 'kiln_sk_123', token: 't', webhookSecret: 'whsec_x' });
    const text = JSON.stringify(lines);
    assert.doesNotMatch(text, /kiln_sk_123|whsec_x/);
    assert.equal(lines[0]?.authorization, REDACTED);
  });
});
