# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_imgapi_global_optspecs
    string join \n config= data-dir= database-url= h/help V/version
end

function __fish_imgapi_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_imgapi_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_imgapi_using_subcommand
    set -l cmd (__fish_imgapi_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c imgapi -n "__fish_imgapi_needs_command" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_needs_command" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_needs_command" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_needs_command" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_needs_command" -s V -l version -d 'Print version'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "serve" -d 'Run the HTTP server'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "check-files" -d 'Verify every image file and icon against its manifest (exists, size, sha1, md5); exit 1 on any problem'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "gc" -d 'Remove expired uploads, expired placeholders and objects in the image areas that no image references. Prints what it would delete unless --yes is given'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "lifecycle" -d 'The lifecycle policy (`[lifecycle]` rules): what it would retire and why, or apply it'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "account" -d 'Manage accounts (auth = "token")'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "config" -d 'Check a configuration as `serve` would load it'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, ...) on stdout'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "publish" -d 'Upload an image file (resumably) and register it with its manifest; waits until the image is active and prints it'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "upload" -d 'Upload a file resumably (no registration); prints the upload id, size, sha1 and content_md5'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "images" -d 'List, show and change images'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "file" -d 'Download an image file, resumably, verified against its digests'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "uploads" -d 'Show or end your upload sessions on the server'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "import-dir" -d 'Seed images from a directory of `*.imgmanifest` files and their image files (operator): import, upload, activate; active ones are skipped, partial ones completed'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "import-remote" -d 'Import an image (and its missing origins) from another IMGAPI, on the server (operator); follows the server\'s job to its end'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "usage" -d 'Show what accounts use: one account\'s images, bytes, unfinished uploads, downloads and quotas, or every account by bytes (operator)'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "man" -d 'Write the man pages (imgapi.1 and one per verb) into a directory'
complete -c imgapi -n "__fish_imgapi_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand serve" -l listen -d 'Address to listen on, e.g. 127.0.0.1:8080 (IMGAPI_LISTEN)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand serve" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand serve" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand serve" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand serve" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand migrate" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand migrate" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand migrate" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand check-files" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand check-files" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand check-files" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand check-files" -l quick -d 'Check sizes only, without reading the files'
complete -c imgapi -n "__fish_imgapi_using_subcommand check-files" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand gc" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand gc" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand gc" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand gc" -l yes -d 'Delete (without it this is a dry run)'
complete -c imgapi -n "__fish_imgapi_using_subcommand gc" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -f -a "plan" -d 'Print what a run would do now and why (uuid, name, version, owner, size, last download, action, rule) and the bytes it would free. Changes nothing'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -f -a "run" -d 'Apply the plan: disable what qualifies, delete what the policy disabled once its grace has passed. Without --yes, only the plan'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and not __fish_seen_subcommand_from plan run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from plan" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from plan" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from plan" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from plan" -l json -d 'JSON instead of a table'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -l yes -d 'Apply it (without it this is `plan`)'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -l json -d 'JSON instead of a table'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from help" -f -a "plan" -d 'Print what a run would do now and why (uuid, name, version, owner, size, last download, action, rule) and the bytes it would free. Changes nothing'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from help" -f -a "run" -d 'Apply the plan: disable what qualifies, delete what the policy disabled once its grace has passed. Without --yes, only the plan'
complete -c imgapi -n "__fish_imgapi_using_subcommand lifecycle; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -f -a "create" -d 'Create an account and print its uuid and token (shown only once)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -f -a "set-quota" -d 'Set an account\'s own quotas, overriding `[quotas]`: a number (0: unlimited) or `default` (the configuration\'s again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and not __fish_seen_subcommand_from create set-quota help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l login -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l uuid -d 'Use this uuid instead of a new one' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -l operator -d 'The account is an operator'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -l max-bytes -d 'Bytes of its images plus its unfinished uploads' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -l max-images -d 'Its images, in any state' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from set-quota" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create an account and print its uuid and token (shown only once)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "set-quota" -d 'Set an account\'s own quotas, overriding `[quotas]`: a number (0: unlimited) or `default` (the configuration\'s again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Load the configuration exactly as `serve` would (flags, environment, file), print it as TOML with secrets redacted, and check what can be checked without serving: directories writable, the database openable, the S3 bucket reachable. Exits 2 with serve\'s message on a configuration error, 1 when a check fails'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from check" -l listen -d 'Address to listen on, as `serve --listen` (IMGAPI_LISTEN)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from check" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from check" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Load the configuration exactly as `serve` would (flags, environment, file), print it as TOML with secrets redacted, and check what can be checked without serving: directories writable, the database openable, the S3 bucket reachable. Exits 2 with serve\'s message on a configuration error, 1 when a check fails'
complete -c imgapi -n "__fish_imgapi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand completions" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand completions" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand completions" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand completions" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -s m -l manifest -d 'The image manifest (JSON): name, version, os, type, ... ; its files[0] may give compression (else guessed from the file)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -s f -l file -d 'The image file' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l wait -d 'Seconds to wait for the image to become active' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l parallel -d 'Send the file as N partial uploads at once (tus concatenation), for long or lossy links; default from the file size: 1 below 64 MiB, 2 below 256 MiB, else 4. An interrupted upload resumes as it began' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l chunk-mib -d 'MiB per upload request' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand publish" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l path -d 'Storage path to write: /LOGIN/stor/... or /assets/...' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l chunk-mib -d 'MiB per upload request' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand upload" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "list" -d 'List images (ListImages filters as flags)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "get" -d 'Show one image'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "update" -d 'Change an image\'s fields: KEY=VALUE pairs (VALUE is JSON when it parses as JSON) and/or a JSON object file'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "activate" -d 'Activate an image whose file is added'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "disable" -d 'Disable an image (hidden from provisioning)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "enable" -d 'Enable a disabled image'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "delete" -d 'Delete an image and its file'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "clone" -d 'Make the account\'s own copy of an image shared with it (its acl holds the account given with --account, or the token\'s): a new image owned by the account, with the same file (copied by the server, not sent again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "acl" -d 'Add or remove accounts of an image\'s ACL'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and not __fish_seen_subcommand_from list get update activate disable enable delete clone acl help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l owner -d 'Images owned by this account uuid' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l name -d 'Name (`~sub` for a substring)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l version -d 'Version (`~sub` for a substring)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l type -d 'Type, e.g. zone-dataset, zvol (`!type` to exclude)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l os -d 'OS, e.g. smartos, linux' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l public -d 'Public (true) or private (false) images only' -r -f -a "true\t''
false\t''"
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l state -d 'State: active (default), unactivated, disabled, creating, failed, all' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l tag -d 'Tag filter KEY=VALUE (repeatable)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l billing-tag -d 'Billing tag (repeatable)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l channel -d 'Channel' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l limit -d 'At most this many images (server maximum 1000)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l marker -d 'Start after this image uuid (paging)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l sort -d 'Sort, e.g. published_at.desc' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l last-downloaded-before -d 'Images never downloaded, or last downloaded before this date' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l last-downloaded-since -d 'Images last downloaded at or after this date' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l admin-fields -d 'With admin fields (files\' store, downloads, last download)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l admin-fields -d 'With admin fields: files\' store, downloads, last download'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -s f -l file -d 'A JSON object of fields to change' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from activate" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from clone" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -f -a "add" -d 'Give accounts access to a private image'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -f -a "remove" -d 'Take accounts off an image\'s ACL'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from acl" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "list" -d 'List images (ListImages filters as flags)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one image'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change an image\'s fields: KEY=VALUE pairs (VALUE is JSON when it parses as JSON) and/or a JSON object file'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "activate" -d 'Activate an image whose file is added'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Disable an image (hidden from provisioning)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Enable a disabled image'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete an image and its file'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "clone" -d 'Make the account\'s own copy of an image shared with it (its acl holds the account given with --account, or the token\'s): a new image owned by the account, with the same file (copied by the server, not sent again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "acl" -d 'Add or remove accounts of an image\'s ACL'
complete -c imgapi -n "__fish_imgapi_using_subcommand images; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -f -a "get" -d 'Download an image\'s file into OUT (via OUT.partial, resumed after any interruption), verified against its md5, sha1 and size'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and not __fish_seen_subcommand_from get help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -s o -l output -d 'Where to write the file' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from help" -f -a "get" -d 'Download an image\'s file into OUT (via OUT.partial, resumed after any interruption), verified against its md5, sha1 and size'
complete -c imgapi -n "__fish_imgapi_using_subcommand file; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -f -a "list" -d 'List your upload sessions (and which this machine can resume)'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -f -a "abort" -d 'End an upload session and free its bytes'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and not __fish_seen_subcommand_from list abort help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from abort" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from help" -f -a "list" -d 'List your upload sessions (and which this machine can resume)'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from help" -f -a "abort" -d 'End an upload session and free its bytes'
complete -c imgapi -n "__fish_imgapi_using_subcommand uploads; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l chunk-mib -d 'MiB per upload request' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-dir" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l source -d 'The source IMGAPI\'s URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l all-origins -d 'Import each missing origin as its own job first, root first (else the server\'s one job imports them)'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l skip-owner-check -d 'Do not check that the image\'s owner exists here'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand import-remote" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l url -d 'Server URL' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l token -d 'Bearer token (servers with auth = "token")' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l account -d 'Act on behalf of this account uuid (`?account=`)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l retries -d 'Retries of a failed request (connection errors, timeouts, 5xx)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l stall-timeout -d 'Seconds without progress after which a transfer is aborted and resumed from the server\'s acknowledged offset' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l limit -d 'At most this many accounts (1 to 1000)' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -l json -d 'Print JSON for scripts instead of human output'
complete -c imgapi -n "__fish_imgapi_using_subcommand usage" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand man" -l out -d 'The directory to write into (docs/man in the source tree)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand man" -l config -d 'TOML configuration file (IMGAPI_CONFIG)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand man" -l data-dir -d 'Directory for the database and local stores (IMGAPI_DATA_DIR)' -r -F
complete -c imgapi -n "__fish_imgapi_using_subcommand man" -l database-url -d 'PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB (IMGAPI_DATABASE_URL); without it, SQLite in the data directory' -r
complete -c imgapi -n "__fish_imgapi_using_subcommand man" -s h -l help -d 'Print help'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "serve" -d 'Run the HTTP server'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "check-files" -d 'Verify every image file and icon against its manifest (exists, size, sha1, md5); exit 1 on any problem'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "gc" -d 'Remove expired uploads, expired placeholders and objects in the image areas that no image references. Prints what it would delete unless --yes is given'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "lifecycle" -d 'The lifecycle policy (`[lifecycle]` rules): what it would retire and why, or apply it'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "account" -d 'Manage accounts (auth = "token")'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "config" -d 'Check a configuration as `serve` would load it'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, ...) on stdout'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "publish" -d 'Upload an image file (resumably) and register it with its manifest; waits until the image is active and prints it'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "upload" -d 'Upload a file resumably (no registration); prints the upload id, size, sha1 and content_md5'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "images" -d 'List, show and change images'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "file" -d 'Download an image file, resumably, verified against its digests'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "uploads" -d 'Show or end your upload sessions on the server'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "import-dir" -d 'Seed images from a directory of `*.imgmanifest` files and their image files (operator): import, upload, activate; active ones are skipped, partial ones completed'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "import-remote" -d 'Import an image (and its missing origins) from another IMGAPI, on the server (operator); follows the server\'s job to its end'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "usage" -d 'Show what accounts use: one account\'s images, bytes, unfinished uploads, downloads and quotas, or every account by bytes (operator)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "man" -d 'Write the man pages (imgapi.1 and one per verb) into a directory'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-files gc lifecycle account config completions publish upload images file uploads import-dir import-remote usage man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from lifecycle" -f -a "plan" -d 'Print what a run would do now and why (uuid, name, version, owner, size, last download, action, rule) and the bytes it would free. Changes nothing'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from lifecycle" -f -a "run" -d 'Apply the plan: disable what qualifies, delete what the policy disabled once its grace has passed. Without --yes, only the plan'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "create" -d 'Create an account and print its uuid and token (shown only once)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "set-quota" -d 'Set an account\'s own quotas, overriding `[quotas]`: a number (0: unlimited) or `default` (the configuration\'s again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Load the configuration exactly as `serve` would (flags, environment, file), print it as TOML with secrets redacted, and check what can be checked without serving: directories writable, the database openable, the S3 bucket reachable. Exits 2 with serve\'s message on a configuration error, 1 when a check fails'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "list" -d 'List images (ListImages filters as flags)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "get" -d 'Show one image'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "update" -d 'Change an image\'s fields: KEY=VALUE pairs (VALUE is JSON when it parses as JSON) and/or a JSON object file'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "activate" -d 'Activate an image whose file is added'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "disable" -d 'Disable an image (hidden from provisioning)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "enable" -d 'Enable a disabled image'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "delete" -d 'Delete an image and its file'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "clone" -d 'Make the account\'s own copy of an image shared with it (its acl holds the account given with --account, or the token\'s): a new image owned by the account, with the same file (copied by the server, not sent again)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from images" -f -a "acl" -d 'Add or remove accounts of an image\'s ACL'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from file" -f -a "get" -d 'Download an image\'s file into OUT (via OUT.partial, resumed after any interruption), verified against its md5, sha1 and size'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from uploads" -f -a "list" -d 'List your upload sessions (and which this machine can resume)'
complete -c imgapi -n "__fish_imgapi_using_subcommand help; and __fish_seen_subcommand_from uploads" -f -a "abort" -d 'End an upload session and free its bytes'
