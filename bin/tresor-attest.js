#!/usr/bin/env node
import '../dist/cli/tresor-attest.js';
