import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestIdFrom } from './request-id.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  it('keeps a sane incoming id', () => {
    for (const id of ['abc-123', '01HZX3J5Q4W0Y8K2N7M6P9R1T0', 'req_4bf92f35:1', 'dGVzdA==', 'a/b+c@d.e']) assert.equal(requestIdFrom(id, 128), id);
  });

  it('makes a new one when the incoming id is missing, repeated, too long or not a token', () => {
    for (const header of [undefined, '', '   ', ['a', 'b'], 'x'.repeat(129), 'has space', 'line\nbreak', '"quoted"', 'ünïcode', '{"json":1}']) {
      assert.match(requestIdFrom(header, 128), UUID, JSON.stringify(header));
    }
  });
});
