import {Flags} from '@oclif/core'
import {DEFAULT_PIN_ROOT} from '../datapath/catalogue.js'

export const pinRootFlag = {
  'pin-root': Flags.string({description: 'bpffs directory holding Pinion\'s pinned programs and maps', default: DEFAULT_PIN_ROOT}),
}
