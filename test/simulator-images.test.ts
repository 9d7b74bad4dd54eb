// The simulator's image models transform their input for real (jobs/simulator/image-transforms.ts),
// so these tests check pixels: sizes, alpha, visible change, blend strength, distinct outputs. Inputs
// come from a loopback server, data URIs and the Files API, through the official replicate client.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Replicate, { type Prediction } from 'replicate';
import sharp from 'sharp';
import type { Simulator } from '../jobs/simulator/index.ts';
import { api, clientFor, download, isFinal, outputUrls, startSimulator, stopSimulators, waitForStatus } from './support/simulator.ts';

const ESRGAN_VERSION = 'f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa';
const ESRGAN_OLDER_VERSION = '42fed1c4974146d4d2414e2be2c5277c7fcf05fcc3a73abf41610695738c1d7b';

/** A product photo in miniature: a light grey background, a red box in the middle. */
async function productPhoto(width: number, height: number): Promise<Buffer> {
  const box = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect x="${width / 4}" y="${height / 4}" width="${width / 2}" height="${height / 2}" fill="#c02020"/></svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 235, g: 235, b: 235 } } })
    .composite([{ input: Buffer.from(box) }])
    .png()
    .toBuffer();
}

async function rawPixels(bytes: Buffer, size?: { width: number; height: number }): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const image = size === undefined ? sharp(bytes) : sharp(bytes).resize(size.width, size.height, { fit: 'cover' });
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Mean absolute difference per RGB channel value (0–255) of two images of one size. */
async function meanDifference(a: Buffer, b: Buffer): Promise<number> {
  const [pa, pb] = await Promise.all([sharp(a).removeAlpha().raw().toBuffer(), sharp(b).removeAlpha().raw().toBuffer()]);
  assert.equal(pa.length, pb.length, 'images of one size');
  let sum = 0;
  for (let i = 0; i < pa.length; i++) sum += Math.abs((pa[i] ?? 0) - (pb[i] ?? 0));
  return sum / pa.length;
}

function singleOutput(prediction: Prediction): string {
  assert.equal(prediction.status, 'succeeded', `${prediction.status}: ${String(prediction.error)}`);
  assert.equal(typeof prediction.output, 'string', `a single URI string, got ${JSON.stringify(prediction.output)}`);
  return String(prediction.output);
}

interface Origin {
  readonly url: string;
  readonly server: Server;
}

/** Serves /photo.png, /square.png, /alpha.png, /notes.txt, /redirect (→ /photo.png); anything else 404. */
async function startOrigin(files: Record<string, { type: string; bytes: Buffer }>): Promise<Origin> {
  const server = createServer((req, res) => {
    if (req.url === '/redirect') return void res.writeHead(302, { location: '/photo.png' }).end();
    const file = files[req.url ?? ''];
    if (file === undefined) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
    res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.bytes.length) }).end(file.bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('image models against the simulator', () => {
  let sim: Simulator;
  let client: Replicate;
  let origin: Origin;
  let photo: Buffer;
  let square: Buffer;
  let withAlpha: Buffer;
  const run = (options: Parameters<Replicate['predictions']['create']>[0]): Promise<Prediction> => client.predictions.create({ wait: 30, ...options });

  before(async () => {
    sim = await startSimulator();
    client = clientFor(sim);
    photo = await productPhoto(64, 48);
    square = await productPhoto(64, 64);
    withAlpha = await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 20, g: 120, b: 200, alpha: 0.5 } } }).png().toBuffer();
    origin = await startOrigin({
      '/photo.png': { type: 'image/png', bytes: photo },
      '/square.png': { type: 'image/png', bytes: square },
      '/alpha.png': { type: 'image/png', bytes: withAlpha },
      '/notes.txt': { type: 'text/plain', bytes: Buffer.from('not a picture') },
    });
  });
  after(async () => {
    origin.server.close();
    await stopSimulators();
  });

  test('real-esrgan (by version) upscales by scale for real: output size = input × scale, PNG', async () => {
    const prediction = await run({ version: ESRGAN_VERSION, input: { image: `${origin.url}/photo.png`, scale: 2 } });
    assert.equal(prediction.version, ESRGAN_VERSION, 'a community model reports the version that ran');
    const file = await download(singleOutput(prediction));
    const meta = await sharp(file.bytes).metadata();
    assert.deepEqual([file.contentType, meta.width, meta.height], ['image/png', 128, 96]);
    // Lanczos keeps the picture: the centre is still red, the corner still grey.
    const { data, width, channels } = await rawPixels(file.bytes);
    const at = (x: number, y: number): number[] => [...data.subarray((y * width + x) * channels, (y * width + x) * channels + 3)];
    assert.deepEqual(at(64, 48), [192, 32, 32]);
    assert.deepEqual(at(2, 2), [235, 235, 235]);

    const byDefault = await run({ version: `nightmareai/real-esrgan:${ESRGAN_OLDER_VERSION}`, input: { image: `${origin.url}/photo.png` } });
    const defaultMeta = await sharp((await download(singleOutput(byDefault))).bytes).metadata();
    assert.deepEqual([defaultMeta.width, defaultMeta.height], [256, 192], 'scale defaults to 4');
  });

  test('recraft-crisp-upscale doubles the size and drops alpha: opaque WebP', async () => {
    const prediction = await run({ model: 'recraft-ai/recraft-crisp-upscale', input: { image: `${origin.url}/alpha.png` } });
    assert.equal(prediction.version, 'hidden');
    const file = await download(singleOutput(prediction));
    const meta = await sharp(file.bytes).metadata();
    assert.deepEqual([file.contentType, meta.format, meta.width, meta.height, meta.hasAlpha], ['image/webp', 'webp', 80, 60, false]);
  });

  test('bria/remove-background yields a real alpha channel: transparent corners, opaque centre', async () => {
    const prediction = await run({ model: 'bria/remove-background', input: { image_url: `${origin.url}/photo.png` } });
    const file = await download(singleOutput(prediction));
    const { data, width, height, channels } = await rawPixels(file.bytes);
    assert.deepEqual([file.contentType, width, height, channels], ['image/png', 64, 48, 4]);
    const alpha = (x: number, y: number): number | undefined => data[(y * width + x) * 4 + 3];
    for (const [x, y] of [[0, 0], [63, 0], [0, 47], [63, 47], [8, 24]] as const) assert.equal(alpha(x, y), 0, `background at ${x},${y}`);
    for (const [x, y] of [[32, 24], [17, 13], [46, 34]] as const) assert.equal(alpha(x, y), 255, `subject at ${x},${y}`);
    assert.deepEqual([...data.subarray((24 * width + 32) * 4, (24 * width + 32) * 4 + 3)], [192, 32, 32], 'the subject keeps its colour');
  });

  test('flux-kontext-pro edits visibly, keeping the input size with match_input_image; one URI out', async () => {
    const prediction = await run({ model: 'black-forest-labs/flux-kontext-pro', input: { prompt: 'make it a watercolour', input_image: `${origin.url}/photo.png`, seed: 5 } });
    const file = await download(singleOutput(prediction));
    const meta = await sharp(file.bytes).metadata();
    assert.deepEqual([file.contentType, meta.width, meta.height], ['image/png', 64, 48], 'png by default, the input size');
    assert.ok((await meanDifference(file.bytes, photo)) > 20, 'an edit visibly changes the input');

    const wide = await run({ model: 'black-forest-labs/flux-kontext-pro', input: { prompt: 'wider', input_image: `${origin.url}/photo.png`, aspect_ratio: '2:1', output_format: 'jpg' } });
    const wideMeta = await sharp((await download(singleOutput(wide))).bytes).metadata();
    assert.deepEqual([wideMeta.format, wideMeta.width, wideMeta.height], ['jpeg', 368, 176], "another aspect ratio: about imageSize² pixels at that ratio");

    const fromText = await run({ model: 'black-forest-labs/flux-kontext-pro', input: { prompt: 'no input image, so text to image', safety_tolerance: 6 } });
    const textMeta = await sharp((await download(singleOutput(fromText))).bytes).metadata();
    assert.deepEqual([textMeta.width, textMeta.height], [256, 256]);
  });

  test('flux-dev img2img: prompt_strength 0 gives the input back, 1 the generated picture', async () => {
    const input = { prompt: 'a red box, reimagined', seed: 11, output_format: 'png' };
    const img2img = async (strength: number): Promise<Buffer> => {
      const prediction = await run({ model: 'black-forest-labs/flux-dev', input: { ...input, image: `${origin.url}/square.png`, prompt_strength: strength } });
      const [url] = outputUrls(prediction);
      return (await download(url ?? '')).bytes;
    };
    const [none, full, half] = await Promise.all([img2img(0), img2img(1), img2img(0.5)]);
    const generated = (await download(outputUrls(await run({ model: 'black-forest-labs/flux-dev', input }))[0] ?? '')).bytes;
    const inputAtSize = await sharp(square).resize(256, 256).png().toBuffer();
    assert.deepEqual([(await sharp(none).metadata()).width, (await sharp(none).metadata()).height], [256, 256], 'the input aspect ratio at the requested megapixels');
    assert.ok((await meanDifference(none, inputAtSize)) < 1, 'strength 0 ≈ the input');
    assert.ok((await meanDifference(full, generated)) < 1, 'strength 1 ≈ the generated picture');
    const toInput = await meanDifference(half, inputAtSize);
    const toGenerated = await meanDifference(half, generated);
    assert.ok(toInput > 5 && toGenerated > 5, `strength 0.5 is neither (${toInput}, ${toGenerated})`);

    const wide = await run({ model: 'black-forest-labs/flux-dev', input: { prompt: 'wide', image: `${origin.url}/photo.png` } });
    const wideMeta = await sharp((await download(outputUrls(wide)[0] ?? '')).bytes).metadata();
    assert.deepEqual([wideMeta.format, wideMeta.width, wideMeta.height], ['webp', 288, 224], "4:3 like the input, about imageSize² pixels");
  });

  test('num_outputs 4 gives 4 distinct images (flux-schnell, sdxl, flux-dev img2img); single-output models give a string', async () => {
    const distinct = async (prediction: Prediction, count: number): Promise<void> => {
      const urls = outputUrls(prediction);
      assert.equal(urls.length, count);
      const bytes = await Promise.all(urls.map(async (url) => (await download(url)).bytes.toString('base64')));
      assert.equal(new Set(bytes).size, count, 'every output is its own picture');
    };
    await distinct(await run({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'four foxes', num_outputs: 4 } }), 4);
    await distinct(await run({ version: '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc', input: { prompt: 'four owls', num_outputs: 4, width: 256, height: 256 } }), 4);
    const img2img = await run({ model: 'black-forest-labs/flux-dev', input: { prompt: 'variations', image: `${origin.url}/square.png`, num_outputs: 2 } });
    await distinct(img2img, 2);
    assert.equal((img2img.metrics as { image_count?: number } | undefined)?.image_count, 2);

    // kontext, crisp-upscale and bria take no num_outputs (it is ignored, as unknown inputs are) and answer one string.
    const kontext = await run({ model: 'black-forest-labs/flux-kontext-pro', input: { prompt: 'one', input_image: `${origin.url}/photo.png`, num_outputs: 3 } });
    singleOutput(kontext);
  });

  test('a Files API upload works as an input: the client uploads a Blob, or pass urls.get yourself', async () => {
    // The official client uploads Blob inputs through POST /v1/files and sends the file's urls.get.
    const uploaded = await run({ model: 'bria/remove-background', input: { image: new Blob([photo], { type: 'image/png' }) } });
    assert.match(String((uploaded.input as { image?: unknown }).image), new RegExp(`^${sim.url}/v1/files/[a-z2-7]+$`));
    const { data } = await rawPixels((await download(singleOutput(uploaded))).bytes);
    assert.equal(data[3], 0, 'the corner is transparent');

    const file = await client.files.create(new File([photo], 'photo.png', { type: 'image/png' }));
    const upscaled = await run({ version: ESRGAN_VERSION, input: { image: file.urls.get, scale: 1.5 } });
    const meta = await sharp((await download(singleOutput(upscaled))).bytes).metadata();
    assert.deepEqual([meta.width, meta.height], [96, 72]);
    // The file is the account's: without the token nobody can read it.
    assert.equal((await fetch(file.urls.get)).status, 401);
    assert.equal((await fetch(`${file.urls.get}/download`)).status, 401);

    // A deleted file can no longer be used.
    await client.files.delete(file.id);
    const gone = await run({ version: ESRGAN_VERSION, input: { image: file.urls.get } });
    assert.equal(gone.status, 'failed');
    assert.match(String(gone.error), /input\.image.*does not exist/);
  });

  test('other inputs: a redirect, a data URI, another prediction\'s output (a chain)', async () => {
    const redirected = await run({ model: 'recraft-ai/recraft-crisp-upscale', input: { image: `${origin.url}/redirect` } });
    assert.equal((await sharp((await download(singleOutput(redirected))).bytes).metadata()).width, 128);

    const dataUri = `data:image/png;base64,${photo.toString('base64')}`;
    const inline = await run({ version: ESRGAN_VERSION, input: { image: dataUri, scale: 1 } });
    assert.equal((await sharp((await download(singleOutput(inline))).bytes).metadata()).width, 64);

    const cutOut = singleOutput(await run({ model: 'bria/remove-background', input: { image: `${origin.url}/photo.png` } }));
    const chained = await run({ version: ESRGAN_VERSION, input: { image: cutOut, scale: 2 } });
    const { data, width, channels } = await rawPixels((await download(singleOutput(chained))).bytes);
    assert.deepEqual([width, channels, data[3]], [128, 4, 0], 'the upscale of the cut-out keeps its transparency');
  });

  test('an unreachable URL, a 404, a non-image or too many pixels fail the prediction with a message, not the request', async () => {
    const closed = await startOrigin({});
    const closedUrl = closed.url;
    await new Promise((resolve) => closed.server.close(resolve));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ image: `${closedUrl}/photo.png` }, /^Could not use input\.image: download failed \(.*ECONNREFUSED/],
      [{ image: `${origin.url}/nothing.png` }, /^Could not use input\.image: download failed with HTTP 404$/],
      [{ image: `${origin.url}/notes.txt` }, /^Could not use input\.image: not a readable image/],
      [{ image: 'ftp://example.com/photo.png' }, /^Could not use input\.image: unsupported URL scheme ftp:$/],
      [{ image: `${origin.url}/photo.png`, scale: 10 }, /^Could not use input\.image: the output would be 640x480, more than 65536 pixels$/],
    ];
    const small = await startSimulator({ maxImagePixels: 256 * 256 });
    const smallClient = clientFor(small);
    for (const [input, error] of cases) {
      const created = await smallClient.predictions.create({ version: ESRGAN_VERSION, input });
      const done = await waitForStatus(smallClient, created.id, isFinal);
      assert.equal(done.status, 'failed', JSON.stringify(input));
      assert.match(String(done.error), error);
      assert.equal(done.output, null);
    }
    const noImage = await waitForStatus(smallClient, (await smallClient.predictions.create({ model: 'bria/remove-background', input: {} })).id, isFinal);
    assert.deepEqual([noImage.status, noImage.error], ['failed', 'Either image or image_url must be provided.']);
  });

  test('invalid parameters are a 422 with Replicate\'s body shape, before anything is created', async () => {
    const cases: [string, Record<string, unknown>, { type: string; field: string; description: string }[]][] = [
      [`/v1/predictions`, { version: ESRGAN_VERSION, input: { scale: 11 } }, [
        { type: 'required', field: 'input', description: 'image is required' },
        { type: 'number_lte', field: 'input.scale', description: 'Must be less than or equal to 10' },
      ]],
      [`/v1/models/black-forest-labs/flux-dev/predictions`, { input: { prompt: 'x', image: 'not a uri', prompt_strength: 1.5 } }, [
        { type: 'format', field: 'input.image', description: "Does not match format 'uri'" },
        { type: 'number_lte', field: 'input.prompt_strength', description: 'Must be less than or equal to 1' },
      ]],
      [`/v1/models/black-forest-labs/flux-kontext-pro/predictions`, { input: { prompt: 'x', input_image: `${origin.url}/photo.png`, safety_tolerance: 3, output_format: 'webp' } }, [
        { type: 'enum', field: 'input.output_format', description: 'input.output_format must be one of the following: "jpg", "png"' },
        { type: 'number_lte', field: 'input.safety_tolerance', description: 'Must be less than or equal to 2 when input_image is given' },
      ]],
      [`/v1/models/recraft-ai/recraft-crisp-upscale/predictions`, { input: { image: 42 } }, [{ type: 'invalid_type', field: 'input.image', description: 'Invalid type. Expected: string, given: integer' }]],
      // A community model needs its version, as on Replicate.
    ];
    const before = sim.stats().creates;
    for (const [path, body, fields] of cases) {
      const res = await api(sim, path, { method: 'POST', json: body });
      assert.equal(res.status, 422, path);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.deepEqual(await res.json(), { title: 'Input validation failed', status: 422, detail: fields.map((f) => `- ${f.field}: ${f.description}`).join('\n'), invalid_fields: fields });
    }
    const byName = await api(sim, '/v1/predictions', { method: 'POST', json: { version: 'nightmareai/real-esrgan', input: { image: `${origin.url}/photo.png` } } });
    assert.equal(byName.status, 422);
    assert.equal(sim.stats().creates, before, 'nothing was created');
  });

  test('the models publish the Input schema validation checks, and their single-URI Output', async () => {
    const esrgan = await client.models.get('nightmareai', 'real-esrgan');
    assert.deepEqual([esrgan.is_official, esrgan.latest_version?.id], [false, ESRGAN_VERSION]);
    type Schema = { components: { schemas: { Input: { required: string[]; properties: Record<string, Record<string, unknown>> }; Output: Record<string, unknown> } } };
    const schema = esrgan.latest_version?.openapi_schema as Schema;
    assert.deepEqual(schema.components.schemas.Input.required, ['image']);
    assert.deepEqual(schema.components.schemas.Input.properties.image, { title: 'Image', 'x-order': 0, description: 'Input image', type: 'string', format: 'uri' });
    assert.deepEqual(schema.components.schemas.Input.properties.scale, { title: 'Scale', 'x-order': 1, description: 'Factor to scale image by', type: 'number', minimum: 0, maximum: 10, default: 4 });
    assert.deepEqual(schema.components.schemas.Output, { type: 'string', format: 'uri', title: 'Output' });
    for (const [owner, name] of [['black-forest-labs', 'flux-kontext-pro'], ['recraft-ai', 'recraft-crisp-upscale'], ['bria', 'remove-background']] as const) {
      const model = await client.models.get(owner, name);
      assert.equal(model.is_official, true);
      assert.equal((model.latest_version?.openapi_schema as Schema).components.schemas.Output.type, 'string', name);
    }
    const kontext = (await client.models.get('black-forest-labs', 'flux-kontext-pro')).latest_version?.openapi_schema as Schema;
    assert.deepEqual(kontext.components.schemas.Input.properties.aspect_ratio?.default, 'match_input_image');
    assert.deepEqual(kontext.components.schemas.Input.properties.safety_tolerance, { ...kontext.components.schemas.Input.properties.safety_tolerance, minimum: 0, maximum: 6, default: 2 });
  });
});

test('same input bytes and parameters (and seed) give the same output bytes, on another simulator too', async () => {
  const photo = await productPhoto(50, 40);
  const origin = await startOrigin({ '/photo.png': { type: 'image/png', bytes: photo } });
  try {
    const outputs = async (): Promise<string[]> => {
      const sim = await startSimulator();
      const client = clientFor(sim);
      const runs = [
        client.predictions.create({ model: 'black-forest-labs/flux-kontext-pro', input: { prompt: 'sepia', input_image: `${origin.url}/photo.png`, seed: 3 }, wait: 30 }),
        client.predictions.create({ model: 'black-forest-labs/flux-dev', input: { prompt: 'half', image: `${origin.url}/photo.png`, seed: 3, prompt_strength: 0.5 }, wait: 30 }),
        client.predictions.create({ version: ESRGAN_VERSION, input: { image: `${origin.url}/photo.png`, scale: 3 }, wait: 30 }),
        client.predictions.create({ model: 'bria/remove-background', input: { image: `${origin.url}/photo.png`, preserve_alpha: false }, wait: 30 }),
      ];
      const urls = (await Promise.all(runs)).map((p) => (Array.isArray(p.output) ? String(p.output[0]) : String(p.output)));
      return Promise.all(urls.map(async (url) => (await download(url)).bytes.toString('base64')));
    };
    const [first, second] = [await outputs(), await outputs()];
    assert.deepEqual(first, second);
  } finally {
    origin.server.close();
    await stopSimulators();
  }
});

test('with a data folder, an image model\'s output is served again after a restart, from the kept input', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-sim-images-'));
  const photo = await productPhoto(30, 20);
  const origin = await startOrigin({ '/photo.png': { type: 'image/png', bytes: photo } });
  try {
    const first = await startSimulator({ dataDir });
    const done = await clientFor(first).predictions.create({ version: ESRGAN_VERSION, input: { image: `${origin.url}/photo.png`, scale: 2 }, wait: 30 });
    const before = (await download(singleOutput(done))).bytes;
    await first.stop();
    origin.server.close();
    assert.equal(readdirSync(path.join(dataDir, 'inputs')).length, 1, 'the input is kept once, by content');

    const second = await startSimulator({ dataDir });
    const again = await clientFor(second).predictions.get(done.id);
    const after = (await download(singleOutput(again))).bytes;
    assert.ok(after.equals(before), 'the same bytes, rendered from the kept input (the origin is gone)');
  } finally {
    origin.server.close();
    await stopSimulators();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('google/nano-banana shows every image of image_input: a strip of tiles under the first image, or under the prompt\'s picture', async () => {
  const solid = (r: number, g: number, b: number) => sharp({ create: { width: 24, height: 24, channels: 3, background: { r, g, b } } }).png().toBuffer();
  const colours: Record<string, [number, number, number]> = { red: [220, 30, 30], green: [30, 200, 60], blue: [40, 60, 220] };
  const files: Record<string, { type: string; bytes: Buffer }> = { '/photo.png': { type: 'image/png', bytes: await productPhoto(64, 48) } };
  for (const [name, [r, g, b]] of Object.entries(colours)) files[`/${name}.png`] = { type: 'image/png', bytes: await solid(r, g, b) };
  const origin = await startOrigin(files);
  try {
    const sim = await startSimulator();
    const client = clientFor(sim);
    const pixelsOf = async (prediction: Prediction) => rawPixels((await download(singleOutput(prediction))).bytes);
    const near = (actual: number[], expected: readonly number[], what: string) =>
      assert.ok(actual.every((value, c) => Math.abs(value - (expected[c] ?? 0)) <= 6), `${what}: ${actual.join(',')} is not ${expected.join(',')}`);
    const at = (image: { data: Buffer; width: number; channels: number }, x: number, y: number) => [...image.data.subarray((y * image.width + x) * image.channels, (y * image.width + x) * image.channels + 3)];

    // An edit: the first image at its own size (match_input_image, the default), the others in the strip.
    const edited = await client.predictions.create({ model: 'google/nano-banana', input: { prompt: 'add them', image_input: ['photo', 'red', 'blue'].map((n) => `${origin.url}/${n}.png`), output_format: 'png' }, wait: 30 });
    const edit = await pixelsOf(edited);
    assert.deepEqual([edit.width, edit.height], [64, 48]);
    near(at(edit, 32, 18), [192, 32, 32], 'the photo above the strip');
    near(at(edit, 16, 42), colours.red ?? [], 'the first tile');
    near(at(edit, 48, 42), colours.blue ?? [], 'the second tile');

    // With an aspect ratio, the picture is drawn from the prompt and every image is a tile.
    const drawn = await client.predictions.create({ model: 'google/nano-banana', input: { prompt: 'a shelf', image_input: ['red', 'green', 'blue'].map((n) => `${origin.url}/${n}.png`), aspect_ratio: '16:9', output_format: 'png' }, wait: 30 });
    const picture = await pixelsOf(drawn);
    assert.ok(picture.width > picture.height);
    const strip = Math.round(picture.height * 0.875);
    for (const [index, name] of ['red', 'green', 'blue'].entries()) near(at(picture, Math.floor((picture.width / 3) * (index + 0.5)), strip), colours[name] ?? [], `tile ${index}`);
    assert.equal((await sharp((await download(singleOutput(await client.predictions.create({ model: 'google/nano-banana', input: { prompt: 'jpg by default', image_input: [`${origin.url}/red.png`] }, wait: 30 })))).bytes).metadata()).format, 'jpeg');

    // Each image is fetched as the model would; a bad one fails the run, named by its place.
    const broken = await client.predictions.create({ model: 'google/nano-banana', input: { prompt: 'x', image_input: [`${origin.url}/red.png`, `${origin.url}/missing.png`] }, wait: 30 });
    assert.deepEqual([broken.status, broken.error], ['failed', 'Could not use input.image_input.1: download failed with HTTP 404']);

    const invalid: [unknown, { type: string; field: string; description: string }][] = [
      [`${origin.url}/red.png`, { type: 'invalid_type', field: 'input.image_input', description: 'Invalid type. Expected: array, given: string' }],
      [[`${origin.url}/red.png`, 'not a uri'], { type: 'format', field: 'input.image_input.1', description: "Does not match format 'uri'" }],
      [Array(15).fill(`${origin.url}/red.png`), { type: 'array_max_items', field: 'input.image_input', description: 'Array must have at most 14 items' }],
    ];
    for (const [imageInput, field] of invalid) {
      const res = await api(sim, '/v1/models/google/nano-banana/predictions', { method: 'POST', json: { input: { prompt: 'x', image_input: imageInput } } });
      assert.equal(res.status, 422);
      assert.deepEqual(((await res.json()) as { invalid_fields: unknown }).invalid_fields, [field]);
    }
    const schema = (await client.models.get('google', 'nano-banana')).latest_version?.openapi_schema as { components: { schemas: { Input: { properties: Record<string, unknown> } } } };
    assert.deepEqual(schema.components.schemas.Input.properties.image_input, {
      title: 'Image Input', 'x-order': 1, description: 'Input images to transform or use as reference (supports multiple images)', type: 'array', items: { type: 'string', format: 'uri' }, maxItems: 14, default: [],
    });
  } finally {
    origin.server.close();
    await stopSimulators();
  }
});
