// `kiln tenants` changes and lists tenants; a wrong name or value says what is allowed, exits
// with 2 and changes nothing. `keys create` can set a new tenant's share-by.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findTenantSettings, listTenantSettings, updateTenant } from '../db/tenants.ts';
import { createTestDatabase, startKiln, type TestKiln } from './support/kiln.ts';

const cli = path.join(import.meta.dirname, '..', 'server', 'cli.ts');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process, whose Kiln must keep serving. */
function runCli(args: string[], databaseUrl: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('kiln tenants', () => {
  let kiln: TestKiln;
  let databaseUrl: string;
  const run = (...args: string[]) => runCli(args, databaseUrl);
  const settingsOf = async (tenantId: string) => {
    const settings = await findTenantSettings(kiln.app.database.db, tenantId);
    assert.ok(settings);
    return { tier: settings.tier, shareBy: settings.shareBy };
  };

  before(async () => {
    databaseUrl = await createTestDatabase();
    // No auth cache: a changed tier shows on the very next call.
    kiln = await startKiln({ databaseUrl, env: { KILN_ROLE: 'api', KILN_AUTH_CACHE_MS: '0' } });
  });
  after(() => kiln.stop());

  it('lists tenants with their tier, share-by and active keys', async () => {
    const created = await run('keys', 'create', '--tenant', 'shops-inc', '--tier', 'free', '--share-by', 'subject');
    assert.equal(created.status, 0, created.stderr);
    const listed = await run('tenants', 'list');
    assert.equal(listed.status, 0, listed.stderr);
    const line = listed.stdout.split('\n').find((candidate) => candidate.includes(' shops-inc '));
    assert.ok(line, listed.stdout);
    const own = 'in-progress-cap=default  requests-per-minute=default  request-burst=default  subject-requests-per-minute=none  subject-request-burst=default  source-hosts=none';
    assert.match(line, new RegExp(`^[0-9a-f-]{36}  shops-inc  tier=free  share-by=subject  ${own}  active-keys=1  created \\d{4}-`));
    assert.match(listed.stdout, new RegExp(`^${kiln.tenantId} .* tier=standard  share-by=tenant  ${own}  active-keys=1 `, 'm'));
  });

  it('sets a tenant\'s tier and share-by, by name or id, and a running API follows the tier', async () => {
    const model = async () => (await kiln.client.status({ id: (await kiln.client.generate({ prompt: 'routed by tier' })).id })).model;
    const tenant = await kiln.app.database.db.selectFrom('tenants').select(['id', 'name']).where('id', '=', kiln.tenantId).executeTakeFirstOrThrow();
    assert.equal(await model(), 'black-forest-labs/flux-schnell', 'standard routes to the fast model');

    const byName = await run('tenants', 'set', tenant.name, '--tier', 'pro', '--share-by', 'subject');
    assert.equal(byName.status, 0, byName.stderr);
    assert.match(byName.stdout, /tier standard → pro, share-by tenant → subject/);
    assert.deepEqual(await settingsOf(tenant.id), { tier: 'pro', shareBy: 'subject' });
    assert.equal(await model(), 'black-forest-labs/flux-dev', 'pro routes to the quality model');

    const byId = await run('tenants', 'set', tenant.id, '--share-by', 'tenant');
    assert.equal(byId.status, 0, byId.stderr);
    assert.deepEqual(await settingsOf(tenant.id), { tier: 'pro', shareBy: 'tenant' }, 'what was not given stays');
  });

  it('gives a tenant its own cap on work in progress and its own request limits, and takes them back to the default', async () => {
    const { tenantId } = await kiln.newTenant('capped-co');
    const capOf = async () => (await kiln.app.database.db.selectFrom('tenants').select('in_progress_cap').where('id', '=', tenantId).executeTakeFirstOrThrow()).in_progress_cap;
    const set = await run('tenants', 'set', 'capped-co', '--in-progress-cap', '25');
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stdout, /in-progress-cap default → 25/);
    assert.equal(await capOf(), 25);
    assert.match((await run('tenants', 'list')).stdout, /  capped-co  .* in-progress-cap=25  /);
    const limits = await run('tenants', 'set', 'capped-co', '--requests-per-minute', '90.5', '--subject-requests-per-minute', '10', '--subject-request-burst', '3');
    assert.equal(limits.status, 0, limits.stderr);
    assert.match(limits.stdout, /requests-per-minute default → 90\.5, subject-requests-per-minute none → 10, subject-request-burst default → 3/);
    const row = await kiln.app.database.db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirstOrThrow();
    assert.deepEqual([row.requests_per_minute, row.request_burst, row.subject_requests_per_minute, row.subject_request_burst], [90.5, null, 10, 3]);
    const reset = await run('tenants', 'set', tenantId, '--in-progress-cap', 'default');
    assert.equal(reset.status, 0, reset.stderr);
    assert.match(reset.stdout, /in-progress-cap 25 → default/);
    assert.equal(await capOf(), null);
  });

  it('sets the hosts a tenant\'s image sources may come from, normalised, and takes them away', async () => {
    const { tenantId } = await kiln.newTenant('hosted-co');
    const hostsOf = async () => (await kiln.app.database.db.selectFrom('tenants').select('source_hosts').where('id', '=', tenantId).executeTakeFirstOrThrow()).source_hosts;
    const set = await run('tenants', 'set', 'hosted-co', '--source-hosts', 'CDN.Shop.Example, *.media.example,cdn.shop.example');
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stdout, /source-hosts none → cdn\.shop\.example,\*\.media\.example/);
    assert.deepEqual(await hostsOf(), ['cdn.shop.example', '*.media.example']);
    assert.match((await run('tenants', 'list')).stdout, /  hosted-co  .* source-hosts=cdn\.shop\.example,\*\.media\.example  active-keys=1 /);
    const refused = await run('tenants', 'set', 'hosted-co', '--source-hosts', 'ok.example,https://cdn.shop.example/images');
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /--source-hosts: "https:\/\/cdn\.shop\.example\/images" is not a host/);
    assert.deepEqual(await hostsOf(), ['cdn.shop.example', '*.media.example'], 'a wrong entry changes nothing');
    const off = await run('tenants', 'set', tenantId, '--source-hosts', 'none');
    assert.equal(off.status, 0, off.stderr);
    assert.deepEqual(await hostsOf(), []);
  });

  it('grants credit, which meters the tenant from then on', async () => {
    const { tenantId, client } = await kiln.newTenant('paying-co');
    assert.equal((await client.credits()).metered, false);
    const granted = await run('tenants', 'grant', 'paying-co', '--usd', '12.5', '--note', 'welcome');
    assert.equal(granted.status, 0, granted.stderr);
    assert.match(granted.stdout, /tenant "paying-co" \(.*\): granted \$12\.5; available \$12\.5, held by running work \$0/);
    assert.deepEqual(await client.credits({ days: 1 }), { metered: true, availableUsd: 12.5, heldUsd: 0, usage: [] });
    const ledger = await kiln.app.database.db.selectFrom('credit_ledger').select(['kind', 'available_delta', 'note']).where('tenant_id', '=', tenantId).execute();
    assert.deepEqual(ledger, [{ kind: 'grant', available_delta: '12500000', note: 'welcome' }]);
    for (const [args, message] of [
      [['tenants', 'grant', 'paying-co'], /tenants grant needs --usd/],
      [['tenants', 'grant', 'paying-co', '--usd', '0'], /--usd must be a number above 0 \(got "0"\)/],
      [['tenants', 'grant', '--usd', '3'], /tenants grant needs a tenant name or id/],
      [['tenants', 'grant', 'nobody-co', '--usd', '3'], /no tenant is named or has the id "nobody-co"/],
    ] as const) {
      const refused = await run(...args);
      assert.equal(refused.status, 2, `${args.join(' ')}: ${refused.stderr}`);
      assert.match(refused.stderr, message);
    }
    assert.equal((await client.credits()).availableUsd, 12.5, 'the refused grants added nothing');
  });

  it('refuses unknown tenants, values and options with exit code 2, the allowed values, and no change', async () => {
    const { tenantId } = await kiln.newTenant('unchanged-co');
    const before = await settingsOf(tenantId);
    const refusals: [string[], RegExp][] = [
      [['tenants', 'set', 'no-such-tenant', '--tier', 'pro'], /no tenant is named or has the id "no-such-tenant"/],
      [['tenants', 'set', 'unchanged-co', '--tier', 'gold'], /--tier must be one of: free, standard, pro \(got "gold"\)/],
      // One wrong value stops the other, valid one too.
      [['tenants', 'set', 'unchanged-co', '--tier', 'pro', '--share-by', 'store'], /--share-by must be one of: tenant, subject \(got "store"\)/],
      [['tenants', 'set', 'unchanged-co'], /needs --tier, --share-by or one of --in-progress-cap, --requests-per-minute/],
      [['tenants', 'set', 'unchanged-co', '--in-progress-cap', '0'], /--in-progress-cap must be a whole number from 1 or "default" \(got "0"\)/],
      [['tenants', 'set', 'unchanged-co', '--in-progress-cap', 'lots'], /--in-progress-cap must be a whole number/],
      [['tenants', 'set', 'unchanged-co', '--request-burst', '2.5'], /--request-burst must be a whole number from 1 or "default"/],
      [['tenants', 'set', 'unchanged-co', '--subject-requests-per-minute', 'default'], /--subject-requests-per-minute must be a number above 0 or "none" \(got "default"\)/],
      [['tenants', 'set', '--tier', 'pro'], /needs a tenant name or id/],
      [['tenants', 'set', 'unchanged-co', 'extra', '--tier', 'pro'], /unexpected: extra/],
      [['tenants', 'set', 'unchanged-co', '--weight', '3'], /unknown option --weight; the options here are: --tier, --share-by, --in-progress-cap, --requests-per-minute, --request-burst, --subject-requests-per-minute, --subject-request-burst/],
      [['tenants', 'set', 'unchanged-co', '--tier'], /--tier/],
      [['tenants', 'rename', 'unchanged-co'], /unknown tenants action: rename/],
      [['tenants'], /unknown tenants action: \(none\)/],
      [['keys', 'create', '--tenant', 'unchanged-co', '--share-by', 'user'], /--share-by must be one of: tenant, subject/],
    ];
    for (const [args, message] of refusals) {
      const refused = await run(...args);
      assert.equal(refused.status, 2, `${args.join(' ')}: ${refused.stderr}`);
      assert.match(refused.stderr, message, args.join(' '));
      assert.match(refused.stderr, /Usage:/);
    }
    assert.deepEqual(await settingsOf(tenantId), before);
    const keys = await kiln.app.database.db.selectFrom('api_keys').select('id').where('tenant_id', '=', tenantId).execute();
    assert.equal(keys.length, 1, 'the refused keys create made no key');
  });

  it('leaves an existing tenant\'s settings to tenants set when keys create names others', async () => {
    const { tenantId } = await kiln.newTenant('existing-co');
    const created = await run('keys', 'create', '--tenant', 'existing-co', '--share-by', 'subject');
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stderr, /exists with share-by tenant; .* apply only to new tenants \(change it with: kiln tenants set existing-co/);
    assert.deepEqual(await settingsOf(tenantId), { tier: 'standard', shareBy: 'tenant' });
  });
});

describe('tenant settings', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('are read for many tenants in one call, and for none that do not exist', async () => {
    const other = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, other.tenantId, { shareBy: 'subject' });
    const unknown = '00000000-0000-4000-8000-000000000000';
    const settings = await listTenantSettings(kiln.app.database.db, [kiln.tenantId, other.tenantId, unknown]);
    assert.deepEqual(
      [...settings.values()].sort((a, b) => (a.shareBy < b.shareBy ? -1 : 1)),
      [
        { tenantId: other.tenantId, tier: 'standard', shareBy: 'subject' },
        { tenantId: kiln.tenantId, tier: 'standard', shareBy: 'tenant' },
      ],
    );
    assert.equal(await findTenantSettings(kiln.app.database.db, unknown), undefined);
    assert.equal((await listTenantSettings(kiln.app.database.db, [])).size, 0);
  });
});
