/** Flags of commands that read images from the store. */
import { Flags } from '@oclif/core';

/** Chooses between the images one name holds for several platforms. */
export const storePlatformFlag = Flags.string({
  description:
    'os/arch[/variant] of the image, when its name was pulled for several platforms (default: the one matching this host, else the last pulled)',
});
