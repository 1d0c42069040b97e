#include <criterion/criterion.h>

#include "artifactfs/secret.h"

Test(secret, gitlab_token_prefixes_are_tokens_wherever_they_stand)
{
	cr_assert(secret_has_token_prefix("glpat-Ab3dEf7hIj1kLmN0pQrS"));
	cr_assert(secret_has_token_prefix("fsname=glpat-x"));
	cr_assert(secret_has_token_prefix("--frobnicate=glrt-abc"));
	cr_assert_not(secret_has_token_prefix("fsname=build2024artifacts01"));
}

/* Names people give mounts and fstab's UUIDs look random too: only unknown options are asked. */
Test(secret, known_mount_options_are_told_apart_from_unknown_ones)
{
	cr_assert(secret_looks_random("Zk3mQ9xY2pL8vN4rT6wBz1"));
	cr_assert(secret_looks_random("fsname=build2024artifacts01"));
	cr_assert_not(secret_looks_random("allow_other"));
	cr_assert(secret_known_mount_option("fsname=build2024artifacts01"));
	cr_assert(secret_known_mount_option("subtype=x"));
	cr_assert(secret_known_mount_option(
		"x-systemd.requires=9b3e6f0a-41c2-4d8e-9f1b-2c7d5e8a0b4f"));
	cr_assert(secret_known_mount_option("ro"));
	cr_assert_not(secret_known_mount_option("rox"));
	cr_assert_not(secret_known_mount_option("Zk3mQ9xY2pL8vN4rT6wBz1"));
}
