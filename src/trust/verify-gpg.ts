/**
 * GPG simple signing (`signedBy`, keyType GPGKeys): a signature is an OpenPGP message wrapping the
 * "atomic container signature" payload. OpenPGP.js does the cryptography; we only accept a message
 * signed by one of the policy's keys.
 */
import * as openpgp from 'openpgp';
import type { SignatureCheck } from './decide.js';
import { ATOMIC_TYPE, parsePayload } from './payload.js';

/** Reads keys as `gpg --export` writes them, binary or ASCII-armoured, one or many. */
export async function readGpgKeys(bytes: Uint8Array): Promise<openpgp.Key[]> {
  const text = Buffer.from(bytes).toString('latin1');
  return text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')
    ? openpgp.readKeys({ armoredKeys: text })
    : openpgp.readKeys({ binaryKeys: bytes });
}

export async function verifyGpgSignature(
  origin: string,
  blob: Uint8Array,
  keys: openpgp.Key[],
): Promise<SignatureCheck> {
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: blob });
  } catch (error) {
    return {
      origin,
      verified: false,
      failure: 'bad-signature',
      detail: `not an OpenPGP message: ${(error as Error).message}`,
    };
  }
  const result = await openpgp
    .verify({ message, verificationKeys: keys, format: 'binary', expectSigned: false })
    .catch((error: Error) => error);
  if (result instanceof Error)
    return { origin, verified: false, failure: 'bad-signature', detail: result.message };
  if (result.signatures.length !== 1)
    return {
      origin,
      verified: false,
      failure: 'bad-signature',
      detail: `${result.signatures.length} OpenPGP signatures where one is expected`,
    };
  const [signature] = result.signatures;
  const keyID = signature!.keyID.toHex().toUpperCase();
  const signer = keys.flatMap((k) => (k.getKeys(signature!.keyID).length ? [k] : []))[0];
  if (!signer)
    return {
      origin,
      verified: false,
      failure: 'wrong-key',
      detail: `signed by key ${keyID}, not a trusted key`,
    };
  try {
    await signature!.verified;
  } catch (error) {
    return { origin, verified: false, failure: 'bad-signature', detail: (error as Error).message };
  }
  const parsed = parsePayload(result.data as Uint8Array, ATOMIC_TYPE);
  if ('problem' in parsed) return { origin, verified: false, failure: 'bad-payload', detail: parsed.problem };
  return {
    origin,
    verified: true,
    signer: `GPG ${signer.getFingerprint().toUpperCase()}`,
    claims: parsed.claims,
  };
}
