# bash completion for artifactfs: its options, the names of its -o options, files for the options
# that take one, folders for the mount point. Needs nothing from the bash-completion package, so
# that it also works where only this file is sourced.
_artifactfs()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local opts="--token-file --project --cache-dir --cache-size --memory-limit --ttl --timeout --connections --retry-for
		--ca-file --allow-delete --log-file --metrics-file --foreground --debug --read-only --help --version -f -d -s -o -h -V"
	local oopts="token_file= project= cache_dir= cache_size= memory_limit= ttl= timeout= connections= retry_for= ca_file= allow_delete
		log_file= metrics_file= allow_other auto_unmount default_permissions uid= gid= umask= ro rw"
	case $prev in
	--token-file | --log-file | --metrics-file | --ca-file)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--cache-dir)
		COMPREPLY=($(compgen -d -- "$cur"))
		return
		;;
	--project | --cache-size | --memory-limit | --ttl | --timeout | --connections | --retry-for)
		return
		;;
	-o)
		# complete the last item of a comma-separated list
		local head=${cur%,*} item=${cur##*,}
		[ "$head" = "$cur" ] && head= || head=$head,
		COMPREPLY=($(compgen -P "$head" -W "$oopts" -- "$item"))
		compopt -o nospace 2>/dev/null
		return
		;;
	esac
	case $cur in
	--*=*)
		return
		;;
	-*)
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
		;;
	esac
	# plain arguments: the URL (from the environment) and the mount point
	COMPREPLY=($(compgen -d -- "$cur"))
	[ -n "${CI_SERVER_URL:-${GITLAB_URL:-}}" ] &&
		COMPREPLY+=($(compgen -W "${CI_SERVER_URL:-$GITLAB_URL}" -- "$cur"))
}
complete -o filenames -F _artifactfs artifactfs
