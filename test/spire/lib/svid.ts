// Reading SPIFFE IDs from issued certificates (node:crypto).
import { X509Certificate } from 'node:crypto';

/** The URI SANs of the first certificate of a PEM chain. */
export function uriSans(pem: string): string[] {
  const cert = new X509Certificate(pem);
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter(s => s.startsWith('URI:'))
    .map(s => s.slice(4));
}

/** The single SPIFFE ID an X.509-SVID carries (SPIFFE X509-SVID: exactly one URI SAN). */
export function spiffeIdOf(pem: string): string {
  const uris = uriSans(pem);
  if (uris.length !== 1) throw new Error(`an X509-SVID has exactly one URI SAN, this one has ${JSON.stringify(uris)}`);
  return uris[0]!;
}

export const roleId = (role: string): string => `spiffe://example.org/agent/acme/content-crew/${role}`;
