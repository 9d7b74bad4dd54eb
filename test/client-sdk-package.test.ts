// What other projects get when they depend on Kiln: `kiln/client-sdk`, compiled JS with
// types inferred from the server's router, and no server code inside — neither in its
// JavaScript nor in its type declarations, which need nothing but tRPC.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { reachableDeclarations } from '../client-sdk/declarations.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const root = path.join(import.meta.dirname, '..');
const dist = path.join(root, 'client-sdk', 'dist');
const entryDeclaration = path.join(dist, 'client-sdk', 'index.d.ts');

/** tRPC's client and the server package it requires as a peer (its types come from there). */
const TRPC_PACKAGES = ['@trpc/client', '@trpc/server'];
const isTrpc = (specifier: string) => TRPC_PACKAGES.some((name) => specifier === name || specifier.startsWith(`${name}/`));

describe('the client-sdk package export', () => {
  let kiln: TestKiln;
  before(async () => {
    const build = spawnSync(process.execPath, [path.join(root, 'client-sdk', 'build.ts')], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('ships JavaScript that imports only the tRPC client', async () => {
    const folder = path.join(dist, 'client-sdk');
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

  it('ships declarations that import only tRPC and each other, and no others', async () => {
    const reached = reachableDeclarations(entryDeclaration);
    for (const [file, imports] of reached) {
      for (const specifier of imports) assert.ok(isTrpc(specifier), `${path.relative(dist, file)} imports ${specifier}`);
    }
    const shipped = (await readdir(dist, { recursive: true })).filter((file) => file.endsWith('.d.ts')).map((file) => path.join(dist, file));
    assert.deepEqual(shipped.sort(), [...reached.keys()].sort(), 'dist holds exactly the declarations the entry reaches');
  });

  it('works when imported by package name', async () => {
    const sdk = (await import('kiln/client-sdk')) as unknown as typeof import('../client-sdk/index.ts');
    const client = sdk.createKilnClient({ url: kiln.url, apiKey: kiln.apiKey });
    const { id } = await client.generate({ prompt: 'through the package export' });
    assert.equal((await client.status({ id })).prompt, 'through the package export');
  });

  it('gives a project with only the packed package and tRPC typed inputs and outputs', async () => {
    const project = await realpath(await mkdtemp(path.join(tmpdir(), 'kiln-consumer-')));
    try {
      const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root, encoding: 'utf8' });
      assert.equal(pack.status, 0, pack.stderr);
      const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];

      // Unpacked rather than installed: npm would also install the server's dependencies
      // (zod, kysely, pg…), and a declaration importing one of them would then pass here
      // while failing in a frontend that has only tRPC.
      const modules = path.join(project, 'node_modules');
      const installed = path.join(modules, 'kiln');
      await mkdir(installed, { recursive: true });
      const unpack = spawnSync('tar', ['-xzf', path.join(project, filename), '-C', installed, '--strip-components=1'], { encoding: 'utf8' });
      assert.equal(unpack.status, 0, unpack.stderr);
      await mkdir(path.join(modules, '@trpc'));
      for (const name of TRPC_PACKAGES) await symlink(path.join(root, 'node_modules', name), path.join(modules, name), 'dir');

      const fixture = path.join(root, 'test', 'fixtures', 'consumer');
      for (const file of ['consumer.ts', 'tsconfig.json']) await copyFile(path.join(fixture, file), path.join(project, file));
      await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'kiln-consumer', private: true, type: 'module' }));

      const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const check = spawnSync(process.execPath, [tsc, '-p', path.join(project, 'tsconfig.json'), '--listFiles'], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);

      // What the compiler loaded: of Kiln, exactly the declarations the entry reaches (so the
      // walk above misses nothing); besides them only tRPC, TypeScript's libs and the consumer.
      const loaded = check.stdout.split('\n').filter((line) => line.startsWith('/'));
      const trpcFolders = await Promise.all(TRPC_PACKAGES.map((name) => realpath(path.join(root, 'node_modules', name))));
      const fromKiln = loaded.filter((file) => file.startsWith(installed + path.sep));
      const others = loaded.filter(
        (file) =>
          !file.startsWith(installed + path.sep) &&
          !trpcFolders.some((folder) => file.startsWith(folder + path.sep)) &&
          !/^lib\.[\w.]+\.d\.ts$/.test(path.basename(file)) &&
          file !== path.join(project, 'consumer.ts'),
      );
      assert.deepEqual(others, [], 'the consumer loads nothing but Kiln, tRPC and the standard libraries');
      const expected = [...reachableDeclarations(entryDeclaration).keys()].map((file) => path.join(installed, path.relative(root, file)));
      assert.deepEqual(fromKiln.sort(), expected.sort());
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });
});
