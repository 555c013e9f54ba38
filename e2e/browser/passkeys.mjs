// A real browser registers a passkey and logs in with it: Debian's
// Chromium, headless, driven by playwright-core, with the DevTools
// virtual authenticator (CTAP2, internal, resident keys, user
// verification) standing in for the platform's.
//
//   node passkeys.mjs <base url, e.g. http://localhost:3000> <tenant> <username>
//   (the password in PASSKEY_TEST_PASSWORD)
//
// Exits 0 when the user registered a passkey, logged in with it without a
// password, and the same assertion sent again was refused; 1 otherwise.

import { chromium } from 'playwright-core';

const [base, tenant, username] = process.argv.slice(2);
const password = process.env.PASSKEY_TEST_PASSWORD;
if (!base || !tenant || !username || !password) {
  console.error('usage: node passkeys.mjs <base url> <tenant> <username> (PASSKEY_TEST_PASSWORD set)');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
let failed = false;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Any page of the service's origin: a secure context on localhost.
  await page.goto(`${base}/t/${tenant}/.well-known/jwks.json`);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  const result = await page.evaluate(async ({ tenant, username, password }) => {
    const root = `/t/${tenant}`;
    const post = async (path, body, token) => {
      const headers = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch(root + path, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: response.status, body: await response.json().catch(() => null) };
    };
    const login = await post('/auth/login', { username, password });
    if (login.body?.status !== 'authenticated') return { step: 'password login', login };
    const token = login.body.access_token;
    const start = await post('/auth/passkeys/register/start', { discoverable: true }, token);
    if (start.status !== 200) return { step: 'register start', start };
    const created = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(start.body.options.publicKey),
    });
    const registered = await post('/auth/passkeys/register/finish', {
      passkey_challenge: start.body.passkey_challenge,
      credential: created.toJSON(),
      name: 'Chromium',
    }, token);
    if (registered.status !== 201) return { step: 'register finish', registered };
    // Passwordless: no username, the authenticator offers the passkey.
    const begin = await post('/auth/passkeys/login/start', {});
    if (begin.status !== 200) return { step: 'login start', begin };
    const asserted = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begin.body.options.publicKey),
    });
    const answer = { passkey_challenge: begin.body.passkey_challenge, credential: asserted.toJSON() };
    const finished = await post('/auth/passkeys/login/finish', answer);
    const replayed = await post('/auth/passkeys/login/finish', answer);
    return {
      step: 'done',
      user_id: login.body.user_id,
      passkey_user_id: finished.body?.user_id,
      status: finished.body?.status,
      resident: registered.body?.resident,
      replay_status: replayed.status,
    };
  }, { tenant, username, password });
  console.log(JSON.stringify(result));
  if (
    result.step !== 'done' ||
    result.status !== 'authenticated' ||
    result.passkey_user_id !== result.user_id ||
    result.replay_status !== 401
  ) {
    failed = true;
  }
} catch (error) {
  console.error(error);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
