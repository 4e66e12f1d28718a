#!/usr/bin/env bash
# Set up sonorisk on a fresh Debian/Ubuntu machine: system packages, then the
# Python package with its pinned constraints. Safe to run again.
#
#   bash scripts/setup.sh            # everything (runtime + test tools)
#   SONORISK_NO_APT=1 bash scripts/setup.sh   # skip the system packages
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the service needs at run time (the Dockerfile installs these):
#   ffmpeg           ffprobe/ffmpeg (probing, transcoding, RTSP pushing in tests)
RUNTIME_APT_PACKAGES=(ffmpeg)
# Debian packages only the tests need (real servers and a real browser):
#   rtsp-server-perl a real RTSP server for the streaming tests
#   chromium         the browser the reader-study tests drive (Playwright, /usr/bin/chromium)
#   postgresql       PostgreSQL server binaries for the reader-study storage tests
#   r-base-core r-cran-proc r-cran-psych r-cran-epir r-cran-vcd
#                    R with the reference packages tests/eval/test_against_r.py checks
#                    sonorisk.eval against: pROC (DeLong), psych (kappa, ICC), epiR
#                    (exact intervals), vcd (weighted kappa interval: psych's is wrong)
TEST_APT_PACKAGES=(rtsp-server-perl chromium postgresql
                   r-base-core r-cran-proc r-cran-psych r-cran-epir r-cran-vcd)
APT_PACKAGES=("${RUNTIME_APT_PACKAGES[@]}" "${TEST_APT_PACKAGES[@]}")

if [[ -z "${SONORISK_NO_APT:-}" ]] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "setup: installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
fi

# torch/torchvision are pinned in constraints.txt (docs/design.md: an open range
# pulls the newest torch and gigabytes of CUDA packages). Every extra
# (serve, study, timesformer, onnx, pretrained: `all`) and the test tools (dev).
echo "setup: installing sonorisk (pip, constraints.txt)"
python3 -m pip install --quiet -c constraints.txt -e ".[all,dev]"
python3 -c "import sonorisk, torch, torchvision, av; print('setup: ok, sonorisk', sonorisk.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| PyAV', av.__version__)"
