// Node's openid-client (with oauth4webapi underneath) as the client of the
// provider: discovery, PKCE and a nonce, the sign-in page driven over
// HTTP, the code exchange (state and `iss` checked by the library), the ID
// token validated by the library, userinfo, refresh, introspection with
// client_secret_basic, revocation. Prints what it saw as JSON.
import * as client from 'openid-client';

const [issuer, clientId, redirectUri, username, password, apiId, apiSecret] = process.argv.slice(2);
const insecure = { execute: [client.allowInsecureRequests] };
const config = await client.discovery(
  new URL(issuer), clientId, { id_token_signed_response_alg: 'EdDSA' }, client.None(), insecure);
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const nonce = client.randomNonce();
const state = client.randomState();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri, scope: 'openid profile', code_challenge: challenge,
  code_challenge_method: 'S256', nonce, state,
});

const page = await fetch(url, { redirect: 'manual' });
if (page.status !== 200) throw new Error(`sign-in page: ${page.status}`);
const cookie = page.headers.get('set-cookie').split(';')[0];
const html = await page.text();
const unescape = (v) => v.replaceAll('&quot;', '"').replaceAll('&#x27;', "'")
  .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
const form = new URLSearchParams();
for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
  form.append(name, unescape(value));
}
form.append('username', username);
form.append('password', password);
const answer = await fetch(page.url, {
  method: 'POST', body: form, redirect: 'manual', headers: { cookie },
});
if (answer.status !== 303) throw new Error(`sign-in: ${answer.status} ${await answer.text()}`);
const location = new URL(answer.headers.get('location'));

const tokens = await client.authorizationCodeGrant(config, location, {
  pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state,
});
const claims = tokens.claims();
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const api = await client.discovery(
  new URL(issuer), apiId, undefined, client.ClientSecretBasic(apiSecret), insecure);
const live = await client.tokenIntrospection(api, refreshed.refresh_token);
await client.tokenRevocation(config, refreshed.refresh_token);
const dead = await client.tokenIntrospection(api, refreshed.refresh_token);
console.log(JSON.stringify({
  sub: claims.sub, amr: claims.amr, nonce: claims.nonce, userinfo: info,
  refreshed: Boolean(refreshed.access_token && refreshed.id_token),
  live: live.active, dead: dead.active,
}));
