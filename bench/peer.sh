# Sourced by the benchmark scripts: `peer_python PKG...` prints an interpreter that has the peer
# packages, installing any that are missing into the venv $PEER_VENV (default /tmp/peer) from PyPI.
# PEER_PYTHON overrides it all (an interpreter you prepared yourself; nothing is installed).
peer_python() {
  if [ -n "${PEER_PYTHON:-}" ]; then echo "$PEER_PYTHON"; return; fi
  local venv=${PEER_VENV:-/tmp/peer} missing=() pkg module
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  for pkg in "$@"; do
    module=${pkg%%[=<>]*}
    case $module in
      tensorflow-cpu) module=tensorflow ;; scikit-learn) module=sklearn ;;
      psycopg2-binary) module=psycopg2 ;;
    esac
    "$venv/bin/python" -c "import ${module//-/_}" 2>/dev/null || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing the peer packages ${missing[*]} into $venv" >&2
    "$venv/bin/pip" install -q "${missing[@]}" >&2
  fi
  echo "$venv/bin/python"
}
