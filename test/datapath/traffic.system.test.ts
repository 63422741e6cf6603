import {trafficSuite} from './traffic-suite.js'
import {BPF_OBJECT_PATH} from '../helpers/system.js'

trafficSuite(BPF_OBJECT_PATH, 'traffic')
