// What other projects get when they depend on Kiln: `kiln/client-sdk`, compiled JS with
// types inferred from the server's router, and no server code inside.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

const root = path.join(import.meta.dirname, '..');

describe('the client-sdk package export', () => {
  let kiln: TestKiln;
  before(async () => {
    const build = spawnSync(process.execPath, [path.join(root, 'client-sdk', 'build.ts')], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('ships JavaScript that imports only the tRPC client', async () => {
    const folder = path.join(root, 'client-sdk', 'dist', 'client-sdk');
    const files = (await readdir(folder)).filter((file) => file.endsWith('.js'));
    assert.ok(files.includes('index.js'));
    for (const file of files) {
      const source = await readFile(path.join(folder, file), 'utf8');
      const imports = [...source.matchAll(/(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/g)].map((match) => match[1]);
      for (const specifier of imports) {
        assert.ok(specifier === '@trpc/client' || specifier?.startsWith('./'), `${file} imports ${specifier}`);
      }
    }
  });

  it('works when imported by package name', async () => {
    const sdk = (await import('kiln/client-sdk')) as unknown as typeof import('../client-sdk/index.ts');
    const client = sdk.createKilnClient({ url: kiln.url, apiKey: kiln.apiKey });
    const { id } = await client.generate({ prompt: 'through the package export' });
    assert.equal((await client.status({ id })).prompt, 'through the package export');
  });

  it('gives a consumer project typed inputs and outputs', () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const check = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'test', 'fixtures', 'consumer', 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  });
});
