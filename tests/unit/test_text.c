/* text_escape: what a log line may carry of a target's names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/text.h"

static const char *esc(const char *s, char *buf, size_t size)
{
	return text_escape(s, buf, size);
}

static void test_controls_and_backslash(void **state)
{
	char buf[TEXT_ESCAPED(64)];

	assert_string_equal(esc("gt\nmemwatch: x", buf, sizeof(buf)), "gt\\nmemwatch: x");
	assert_string_equal(esc("a\tb\\c\r\x1b[2J\x7f", buf, sizeof(buf)), "a\\tb\\\\c\\x0d\\x1b[2J\\x7f");
	assert_string_equal(esc("plain /usr/lib/libc.so.6", buf, sizeof(buf)), "plain /usr/lib/libc.so.6");
}

static void test_utf8(void **state)
{
	char buf[TEXT_ESCAPED(64)];

	/* Kept: é and €; escaped: NEL (U+0085, a C1 control), a lone
	 * continuation byte and a truncated sequence. */
	assert_string_equal(esc("caf\xc3\xa9 \xe2\x82\xac", buf, sizeof(buf)), "caf\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(esc("a\xc2\x85" "b", buf, sizeof(buf)), "a\\u0085b");
	assert_string_equal(esc("\x80x\xe2\x82", buf, sizeof(buf)), "\\x80x\\xe2\\x82");
}

static void test_cut_short_whole(void **state)
{
	char buf[7];

	/* Never half an escape nor half a character. */
	assert_string_equal(esc("abcde\nfg", buf, sizeof(buf)), "abcde");
	assert_string_equal(esc("abcdef\xc3\xa9", buf, sizeof(buf)), "abcdef");
	assert_string_equal(esc("", buf, sizeof(buf)), "");
	/* The worst case fits TEXT_ESCAPED. */
	char worst[TEXT_ESCAPED(4)];
	assert_string_equal(esc("\x80\x81\x82\x83", worst, sizeof(worst)), "\\x80\\x81\\x82\\x83");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls_and_backslash),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_cut_short_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
