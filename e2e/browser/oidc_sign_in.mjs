// Debian's Chromium, headless, signs in on the provider's sign-in page:
// opens the authorization URL, types the username and password, submits
// the form, and prints the URL the browser was sent back to (the client's
// redirect URI, which the test serves).
import { chromium } from 'playwright-core';

const [authorizeUrl, username, password, redirectPrefix] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
try {
  const page = await browser.newPage();
  const response = await page.goto(authorizeUrl);
  if (response.status() !== 200) throw new Error(`sign-in page: ${response.status()}`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL(`${redirectPrefix}**`), page.click('button[type="submit"]')]);
  console.log(JSON.stringify({ landed: page.url() }));
} finally {
  await browser.close();
}
