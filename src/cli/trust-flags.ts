/** `--policy` and `--registries.d`, as skopeo spells them, for the commands that obey a trust policy. */
import { Flags } from '@oclif/core';
import { loadTrustSettings, type TrustSettings } from '../trust/index.js';

export const trustFlags = {
  policy: Flags.string({
    description:
      'trust policy (containers-policy.json) to obey instead of ~/.config/containers/policy.json or /etc/containers/policy.json',
  }),
  'registries.d': Flags.string({
    description:
      'directory of registries.d YAML files saying where signatures are (default as containers/image)',
  }),
};

export function trustSettings(flags: {
  policy?: string | undefined;
  'registries.d'?: string | undefined;
}): Promise<TrustSettings> {
  return loadTrustSettings({ policy: flags.policy, registriesD: flags['registries.d'] });
}

/** --verbose says once which policy applies, or that there is none (and so no image is verified). */
export function describePolicy(settings: TrustSettings): string {
  return settings.policy
    ? `trust policy: ${settings.policy.file}`
    : 'trust policy: none (no --policy, ~/.config/containers/policy.json or /etc/containers/policy.json): signatures are not checked';
}
