// The wire contract (runtime/api/wire.h): the JSON shapes docs/api.md
// documents, decoding tolerant of absent fields and strict about types, and
// the strict param decoding the daemon's handlers use.
#include "runtime/api/wire.h"

#include <gtest/gtest.h>

#include "runtime/api/match.h"

namespace specula::api {
namespace {

TEST(Wire, CommitResponseHasTheDocumentedShape) {
  CommitResponse r;
  r.hit = true;
  r.branch = "b1";
  r.exit_code = 0;
  r.stdout_text = "hi\n";
  r.duration_ms = 12;
  r.saved_ms = 11;
  r.head = "c2";
  r.lossy_effects.push_back({"cache", "create", "/var/cache/x", "/var/cache", true, ""});
  r.flags = {"nondeterministic"};
  Json j = ToJson(r);
  EXPECT_EQ(j, Json::parse(R"({"hit":true,"branch":"b1","exit_code":0,"signal":0,"stdout":"hi\n","stderr":"",
      "truncated":false,"duration_ms":12,"saved_ms":11,"head":"c2","flags":["nondeterministic"],
      "lossy_effects":[{"tag":"cache","kind":"create","path":"/var/cache/x","rule":"/var/cache",
                        "compensated":true,"detail":""}],"promote_notes":[]})"));
  // Whole milliseconds stay integers on the wire.
  EXPECT_TRUE(j["duration_ms"].is_number_unsigned());
  auto back = FromJson<CommitResponse>(j, "action.commit");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  ASSERT_EQ(back->lossy_effects.size(), 1u);
  EXPECT_EQ(back->lossy_effects[0].kind, "create");
  EXPECT_TRUE(back->lossy_effects[0].compensated);
  EXPECT_EQ(back->stdout_text, "hi\n");
  // What a promote onto the base left out (docs/api.md PromoteNote).
  r.promote_notes.push_back({"usr/bin/x", "stripped", "setuid bit"});
  EXPECT_EQ(ToJson(r)["promote_notes"],
            Json::parse(R"([{"path":"usr/bin/x","action":"stripped","detail":"setuid bit"}])"));
}

TEST(Wire, BranchSummaryResultIsNullUntilDoneAndCheckpointRootHasNullParent) {
  BranchSummary b{"b1", "s1", "running", "make", "c1", "2026-11-28T16:41:46.123Z", std::nullopt};
  EXPECT_TRUE(ToJson(b)["result"].is_null());
  b.result = BranchResult{0, 0, 5, 3, 0, false, "ok\n", ""};
  EXPECT_EQ(ToJson(b)["result"]["stdout"], "ok\n");
  Checkpoint root;
  root.checkpoint = "c1";
  EXPECT_TRUE(ToJson(root)["parent"].is_null());
  auto decoded = FromJson<Checkpoint>(ToJson(root), "checkpoint.show");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->parent, "");
}

TEST(Wire, BranchDetailIsTheSummaryPlusItsRecord) {
  BranchDetail d;
  d.branch = "b7";
  d.state = "done";
  d.reason = "";
  d.journal.push_back({"open", "/etc/motd", "bash", ""});
  Json j = ToJson(d);
  EXPECT_EQ(j["branch"], "b7");
  EXPECT_EQ(j["journal"][0]["kind"], "open");
  for (const char* key : {"deferred", "denied", "lossy_effects", "upper_bytes", "flags", "reason", "result"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(Wire, RepliesToleratesAbsentFieldsAndNumericIdsButNotWrongTypes) {
  auto old = FromJson<BranchResult>(Json{{"exit_code", 3}, {"stdout_bytes", 5}}, "branch.show");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->exit_code, 3);
  EXPECT_FALSE(old->stdout_text.has_value());  // an older daemon sent sizes only
  auto numeric = FromJson<SpeculateResponse>(Json{{"branch", 7}}, "action.speculate");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->branch, "7");
  auto fractional = FromJson<BranchResult>(Json{{"duration_ms", 12.5}}, "branch.show");
  ASSERT_TRUE(fractional.ok());
  EXPECT_DOUBLE_EQ(fractional->duration_ms, 12.5);
  EXPECT_FALSE(FromJson<CommitResponse>(Json{{"hit", "yes"}}, "action.commit").ok());
  EXPECT_FALSE(FromJson<CommitResponse>(Json::array(), "action.commit").ok());
  auto err = FromJson<Session>(Json{{"checkpoints", "many"}}, "session.show");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code(), Code::kInternal);
  EXPECT_NE(err.error().message().find("session.show"), std::string::npos);
}

TEST(Wire, RequestsEncodeTheirParams) {
  CreateSessionRequest create;
  EXPECT_EQ(ToJson(create), Json::parse(R"({"base":"/","target":"layer"})"));
  create.policy = "sysadmin";
  create.name = "n";
  EXPECT_EQ(ToJson(create)["policy"], "sysadmin");
  CommitRequest commit;
  commit.session = "s1";
  commit.command = "make";
  EXPECT_EQ(ToJson(commit), Json::parse(R"({"session":"s1","command":"make","timeout_ms":0})"));
  EXPECT_STREQ(CommitRequest::kMethod, "action.commit");
  EXPECT_EQ(ToJson(PingRequest{}), Json::object());
}

TEST(Wire, DecodeParamsIsStrict) {
  CommitRequest commit;
  Status ok = DecodeParams(Json{{"session", "s1"}, {"command", " ls "}, {"timeout_ms", 100}}, commit);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(commit.command, " ls ");
  EXPECT_EQ(commit.timeout_ms, 100u);

  ShowSessionRequest show;
  Status wrong_type = DecodeParams(Json{{"session", 42}}, show);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.error().message(), "session.show: param \"session\" must be a string");

  ListSessionsRequest list;
  Status typo = DecodeParams(Json{{"sesion", "x"}}, list);
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().code(), Code::kInvalidArgument);

  CommitRequest nul;
  Status with_nul = DecodeParams(Json{{"session", "s1"}, {"command", std::string("ls\0x", 4)}}, nul);
  ASSERT_FALSE(with_nul.ok());
  EXPECT_EQ(with_nul.error().message(), "command contains a NUL byte");

  ShowBranchRequest branch;
  EXPECT_FALSE(DecodeParams(Json{{"branch", "../../etc"}}, branch).ok());

  CreateSessionRequest create;
  EXPECT_FALSE(DecodeParams(Json{{"base", "relative/dir"}}, create).ok());
  EXPECT_FALSE(DecodeParams(Json{{"target", "sideways"}}, create).ok());
  ASSERT_TRUE(DecodeParams(Json{{"policy", "sysadmin"}}, create).ok());
  EXPECT_EQ(create.base, "/");
  EXPECT_EQ(create.target, "layer");

  MountCheckpointRequest mount;
  EXPECT_FALSE(DecodeParams(Json{{"checkpoint", "c1"}, {"dir", "rel"}}, mount).ok());
}

TEST(Match, TrimAndNormalisations) {
  EXPECT_EQ(TrimCommand("  ls -l \t\n"), "ls -l");
  EXPECT_EQ(NormaliseCommand("ls   -l ;; ", {"collapse_whitespace", "strip_trailing_semicolon"}), "ls -l");
  EXPECT_EQ(NormaliseCommand("ls   -l", {}), "ls   -l");
  EXPECT_FALSE(ValidateNormalisations({"lowercase"}).ok());
}

}  // namespace
}  // namespace specula::api
