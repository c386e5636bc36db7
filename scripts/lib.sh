# scripts/lib.sh: what scripts/run and scripts/test share. Sourced, not run.

# Debian packages to build the project, and the extra ones to test it
# (a virtual X server for the GTK tests, validators for the data files).
TF_BUILD_PACKAGES=(
  build-essential meson ninja-build pkg-config gettext
  libglib2.0-dev libgtk-4-dev libadwaita-1-dev libjson-glib-dev libopenblas-dev libdnnl-dev libpng-dev
  libjpeg-dev libcairo2-dev libfreetype-dev
)
# The training data (SPEC §5): read from these packages, never downloaded.
TF_DATA_PACKAGES=(
  dataset-fashion-mnist fonts-noto-color-emoji unicode-data wordnet-base
)
TF_TEST_PACKAGES=(
  xvfb xauth desktop-file-utils appstream
)

# Installs those of the given packages that are missing, with one
# `apt-get update` first; through sudo when not root.
tf_install_packages () {
  local missing=() package
  for package in "$@"; do
    if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$package")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo > /dev/null; then
      echo "$0: these packages are missing and installing them needs root or sudo: ${missing[*]}" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "$0: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# tf_build DIR [MESON_OPTION…]: configures DIR (once; later calls apply the
# options to it) and builds it.
tf_build () {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    if [ $# -gt 0 ]; then
      meson configure "$dir" "$@" || return 1
    fi
  elif [ -d "$dir/meson-private" ]; then
    meson setup --wipe "$dir" "$@" || return 1
  else
    meson setup "$dir" "$@" || return 1
  fi
  # shellcheck disable=SC2086 # a list of targets
  meson compile -C "$dir" ${TF_BUILD_TARGETS:-}
}
