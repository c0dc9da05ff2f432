#compdef vmtool

_vmtool_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _VMTOOL_COMPLETE=complete_zsh vmtool)
}

compdef _vmtool_completion vmtool
