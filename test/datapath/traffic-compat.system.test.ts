import {trafficSuite} from './traffic-suite.js'
import {COMPAT_OBJECT_PATH} from '../helpers/system.js'

// The datapath for kernels without bpf_cast_to_kern_ctx: every L4 checksum change goes through the helper.
trafficSuite(COMPAT_OBJECT_PATH, 'trafficc')
