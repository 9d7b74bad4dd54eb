// The README's client example is real code: run it, unchanged, against a running Kiln.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

const root = path.join(import.meta.dirname, '..');

describe('the README', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('shows the install-and-start and test commands first', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]?.trim());
    assert.deepEqual(blocks.slice(0, 2), ['npm install && npm start', 'npm test']);
  });

  it('has a client example that runs and prints every asset', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(example, 'a ts example exists');
    assert.ok(example.trim().split('\n').length <= 12, 'it stays short');
    // Inside the package, so `kiln/client-sdk` resolves the way it does for a dependent project.
    const file = path.join(root, 'test', `.readme-example-${process.pid}.ts`);
    await writeFile(file, example);
    try {
      // Asynchronously: the Kiln under test runs in this process and must keep serving.
      const run = await promisify(execFile)(process.execPath, [file], {
        env: { ...process.env, KILN_URL: kiln.url, KILN_API_KEY: kiln.apiKey },
        encoding: 'utf8',
        timeout: 90_000,
      });
      const lines = run.stdout.trim().split('\n');
      assert.equal(lines.length, 5, run.stdout); // 2 platforms × 2 formats + the original
      assert.ok(lines.some((line) => /^x-post avif 1200×675 http:\/\/.+\/assets\/[0-9a-f]{64}\.avif$/.test(line)), run.stdout);
    } finally {
      await rm(file, { force: true });
    }
  });
});
