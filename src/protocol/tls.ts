/**
 * TLS for weft's ports (wss://, and https:// for the dashboard): the files a
 * process is given (--tls-cert, --tls-key, --tls-ca,
 * --tls-require-client-cert), read once, and a temporary CA for a local
 * cluster (like Dask's `Security.temporary()`), made with openssl.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';

/** TLS files by path, as given on a command line or to LocalCluster. */
export interface TlsFiles {
  /** This process's certificate and key (PEM): a server's, and its client certificate when others require one. */
  cert?: string | undefined;
  key?: string | undefined;
  /** The CA that signed the others' certificates (PEM); default: the system's. */
  ca?: string | undefined;
  /** Servers accept only clients with a certificate signed by `ca`. */
  requireClientCert?: boolean | undefined;
}

/** The same, read: what Node's tls takes. */
export interface TlsOptions {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  requireClientCert?: boolean;
}

/** Reads the files (null: no TLS). A certificate needs its key; a missing file is named. */
export function readTls(files: TlsFiles | undefined): TlsOptions | null {
  if (!files || (!files.cert && !files.key && !files.ca)) return null;
  if (Boolean(files.cert) !== Boolean(files.key)) throw new ConfigError('--tls-cert and --tls-key go together: a certificate needs its private key');
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  return {
    ...(files.cert ? { cert: read('--tls-cert', files.cert), key: read('--tls-key', files.key as string) } : {}),
    ...(files.ca ? { ca: read('--tls-ca', files.ca) } : {}),
    ...(files.requireClientCert ? { requireClientCert: true } : {}),
  };
}

/** A server needs a certificate and its key. */
export function serverTls(tls: TlsOptions | null, what: string): TlsOptions | null {
  if (tls && (!tls.cert || !tls.key)) throw new ConfigError(`TLS for the ${what} needs --tls-cert and --tls-key`);
  return tls;
}

/**
 * A temporary CA and one certificate it signs for 127.0.0.1 and localhost,
 * good as a server's and a client's, in a new directory (the caller removes
 * it). For LocalCluster's `tls: 'self-signed'`: every process uses the same
 * files, and trusts only that CA.
 */
export function temporaryTls(): { dir: string; files: Required<Omit<TlsFiles, 'requireClientCert'>> } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  const f = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    try {
      // Loaded here, not with the module: every command parses the TLS flags, few make a CA.
      process.getBuiltinModule('node:child_process').execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new ConfigError(`making a temporary CA needs openssl: ${(err as Error).message}`);
    }
  };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=weft temporary CA']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('node.key'), '-out', f('node.csr'), '-subj', '/CN=weft node']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(['x509', '-req', '-in', f('node.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('node.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { dir, files: { cert: f('node.pem'), key: f('node.key'), ca: f('ca.pem') } };
}
