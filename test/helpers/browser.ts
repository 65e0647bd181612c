// Debian's headless Chromium, driven by playwright-core (no browser download:
// `npx playwright install` is not used anywhere). Every page request goes
// through a guard that records it and aborts anything not on loopback, and
// the browser itself sends all non-loopback traffic to a dead proxy on
// 127.0.0.1:9, so nothing can leave the machine even if the guard is bypassed.
import * as fs from 'node:fs';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions } from 'playwright-core';

export const CHROMIUM = process.env['HEXR_CHROMIUM'] ?? '/usr/bin/chromium';

export const CHROMIUM_SKIP = fs.existsSync(CHROMIUM)
  ? undefined
  : `needs Debian's chromium at ${CHROMIUM} (as root: scripts/install-chromium.sh, or apt-get install chromium chromium-driver)`;

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  // Anything not on loopback goes to a closed port on loopback (Chromium
  // never proxies loopback addresses itself: its implicit bypass rules).
  '--proxy-server=http://127.0.0.1:9',
];

export function isLoopbackUrl(u: string): boolean {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return false;
  }
  if (url.protocol === 'data:' || url.href === 'about:blank') return true;
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'ws:') return false;
  const h = url.hostname;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === 'localhost' || h === '[::1]';
}

/** A headless Chromium with a fresh, temporary profile (playwright creates one per launch and removes it on close). */
export class HeadlessChromium {
  /** Every request a page of this browser made, in order. */
  readonly requests: string[] = [];
  /** Requests that were not to loopback (aborted before they left). */
  readonly offLoopback: string[] = [];

  private constructor(private readonly browser: Browser) {}

  static async launch(): Promise<HeadlessChromium> {
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
    return new HeadlessChromium(browser);
  }

  get version(): string {
    return this.browser.version();
  }

  async context(opts: BrowserContextOptions = {}): Promise<BrowserContext> {
    const ctx = await this.browser.newContext({ viewport: { width: 1400, height: 900 }, serviceWorkers: 'block', ...opts });
    ctx.on('request', r => this.requests.push(r.url()));
    await ctx.route('**/*', async route => {
      const u = route.request().url();
      if (isLoopbackUrl(u)) return route.continue();
      this.offLoopback.push(u);
      return route.abort('blockedbyclient');
    });
    return ctx;
  }

  async close(): Promise<void> {
    await this.browser.close();
  }
}
