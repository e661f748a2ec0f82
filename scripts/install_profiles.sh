#!/usr/bin/env bash
# Install the workflow's Snakemake profiles as named profiles, so that in the repository root
#   snakemake --profile slurm all      (and --profile local)
# works as cluster users type it. Snakemake looks a bare profile name up in
# ${XDG_CONFIG_HOME:-~/.config}/snakemake/<name> and /etc/xdg/snakemake/<name>, never in ./profiles.
#
# Each profile is installed as a symbolic link to this repository's profiles/<name>, so a
# `git pull` updates it with nothing to re-install. A profile of the same name that is not such
# a link (one the user wrote, or a link to another folder) is never touched: it is reported, and
# ours can be installed under another name with a prefix:
#   PEROVS_PROFILE_PREFIX=perovs- bash scripts/install_profiles.sh   ->  --profile perovs-slurm
# Exit status: 0 when every profile is installed (or already was), 3 when one was left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

repo_profiles="$(pwd -P)/profiles"
config_home="${XDG_CONFIG_HOME:-${HOME}/.config}"
target_dir="${config_home}/snakemake"
prefix="${PEROVS_PROFILE_PREFIX:-}"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(slurm local)

mkdir -p "$target_dir"
status=0
for name in "${names[@]}"; do
    source_dir="${repo_profiles}/${name}"
    if [ ! -f "${source_dir}/config.yaml" ]; then
        echo "install_profiles: no profile '${name}' in ${repo_profiles}" >&2
        exit 2
    fi
    link="${target_dir}/${prefix}${name}"
    if [ -L "$link" ] && [ "$(readlink -f "$link")" = "$(readlink -f "$source_dir")" ]; then
        echo "install_profiles: --profile ${prefix}${name} already is ${source_dir}"
    elif [ -L "$link" ] && [ ! -e "$link" ]; then
        # a dangling link points nowhere (e.g. a moved clone): replacing it loses nothing
        echo "install_profiles: replacing broken link ${link} (-> $(readlink "$link"))"
        ln -sfn "$source_dir" "$link"
    elif [ -e "$link" ]; then
        current="$(readlink -f "$link" 2>/dev/null || echo "$link")"
        echo "install_profiles: a profile '${prefix}${name}' already exists at ${link}" \
            "(-> ${current}); left untouched." >&2
        echo "  Use --profile ${source_dir}, or install this workflow's profile under another" \
            "name: PEROVS_PROFILE_PREFIX=perovs- bash scripts/install_profiles.sh" \
            "(then --profile perovs-${name})." >&2
        status=3
    else
        ln -s "$source_dir" "$link"
        echo "install_profiles: --profile ${prefix}${name} -> ${source_dir}"
    fi
done
exit "$status"
