#!/usr/bin/env bash
# Installs the Debian packages the series uses, where they are missing:
#   dataset-fashion-mnist  the full Fashion-MNIST, in /usr/share/datasets/fashion-mnist
#   chromium               the browser tests/test_browser.py drives (lesson 06 in JupyterLab, the Voila page)
#   libjs-mathjax          MathJax 2, copied into the book (make book) so its math renders offline
# Needs root (or sudo) and apt-get; elsewhere it says what to install and goes on,
# and the tests that need a package skip with that reason.
set -euo pipefail
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/javascript/mathjax/MathJax.js ] || missing+=(libjs-mathjax)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not a Debian system; for the full Fashion-MNIST lesson put its IDX files in \$VAE_TEACH_DATA/fashion-mnist," >&2
  echo "      for the browser tests install Chromium (VAE_TEACH_CHROMIUM=its path; without it they skip)," >&2
  echo "      and for make book a MathJax 2.7 folder (VAE_TEACH_MATHJAX=its path)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
  echo "note: run 'sudo apt-get install ${missing[*]}' to get ${missing[*]}; going on without" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
