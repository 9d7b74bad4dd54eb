import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { frameForCatalogue } from './catalogue.ts';

const limits = { maxInputPixels: 40_000_000, timeoutSeconds: 10 };

/** A 40×20 opaque red product in the middle of a 200×200 transparent cut-out. */
async function cutOut(): Promise<Buffer> {
  const product = await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 200, g: 0, b: 0, alpha: 1 } } }).png().toBuffer();
  return sharp({ create: { width: 200, height: 200, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).composite([{ input: product, gravity: 'centre' }]).png().toBuffer();
}

describe('framing a cut-out for a catalogue', () => {
  it('trims the transparent margins and adds an even one back, a share of the longer edge', async () => {
    const framed = await sharp(await frameForCatalogue(await cutOut(), { background: 'transparent', marginShare: 0.25 }, limits)).metadata();
    assert.deepEqual([framed.width, framed.height, framed.hasAlpha], [40 + 20, 20 + 20, true]);
  });
  it('lays it on white, opaque', async () => {
    const framed = await frameForCatalogue(await cutOut(), { background: 'white', marginShare: 0.1 }, limits);
    const { data, info } = await sharp(framed).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    assert.deepEqual([...data.subarray(0, 3)], [255, 255, 255]);
  });
  it('frames an image with nothing to trim whole', async () => {
    const blank = await sharp({ create: { width: 30, height: 10, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const framed = await sharp(await frameForCatalogue(blank, { background: 'white', marginShare: 0 }, limits)).metadata();
    assert.deepEqual([framed.width, framed.height], [30, 10]);
  });
});
