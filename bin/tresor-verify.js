#!/usr/bin/env node
import '../dist/cli/tresor-verify.js';
