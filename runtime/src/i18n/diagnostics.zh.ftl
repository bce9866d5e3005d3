# Diagnostics in Chinese. Each message's comment is the English text's shape (a regular
# expression); its named groups carry over into the Chinese text. A group named `n_…` is a noun
# (translated by its `noun-…` entry), `v_…` a value as the checker words it, `t_…` text that is
# itself translated by these shapes. Codes, files, lines and columns never change.

## Messages

# ^unknown (?<n_what>[A-Za-z ]+) `(?<name>[^`]*)`$
unknown-thing = 未知的{ $n_what } `{ $name }`
# ^form `(?<form>[^`]*)` has no field `(?<field>[^`]*)`$
form-no-field = 表单 `{ $form }` 没有字段 `{ $field }`
# ^form `(?<form>[^`]*)` has no state `(?<state>[^`]*)`$
form-no-state = 表单 `{ $form }` 没有状态 `{ $state }`
# ^form `(?<form>[^`]*)` has no action `(?<action>[^`]*)`$
form-no-action = 表单 `{ $form }` 没有动作 `{ $action }`
# ^this record has no field `(?<field>[^`]*)`$
record-no-field = 这条记录没有字段 `{ $field }`
# ^there is no field `(?<field>[^`]*)` to set$
no-field-to-set = 没有可以设置的字段 `{ $field }`
# ^event `(?<event>[^`]*)` carries no field `(?<field>[^`]*)`$
event-no-field = 事件 `{ $event }` 没有字段 `{ $field }`
# ^this table row of form `(?<form>[^`]*)` has no column `(?<column>[^`]*)`$
row-no-column = 表单 `{ $form }` 的表格行没有列 `{ $column }`
# ^`(?<source>[^`]*)`: `(?<link>[^`]*)` is not a link field of this record \(nor `event`\)$
not-a-link = `{ $source }`：`{ $link }` 不是这条记录的关联字段（也不是 `event`）
# ^SOP `(?<sop>[^`]*)` has no task `(?<task>[^`]*)`$
sop-no-task = SOP `{ $sop }` 没有任务 `{ $task }`
# ^members have no attribute `(?<attr>[^`]*)`$
no-member-attribute = 成员没有属性 `{ $attr }`
# ^members have no attribute `(?<attr>[^`]*)` for `(?<place>[^`]*)`$
no-member-attribute-for = 成员没有属性 `{ $attr }`，`{ $place }` 用不了它
# ^`(?<name>[^`]*)` is not defined here$
not-defined = 这里没有定义 `{ $name }`
# ^`(?<value>[^`]*)` is not an option of field `(?<field>[^`]*)`$
not-an-option = `{ $value }` 不是字段 `{ $field }` 的选项
# ^field `(?<field>[^`]*)` has no option `(?<option>[^`]*)`, which this grade can give$
grade-option-missing = 字段 `{ $field }` 没有选项 `{ $option }`，而这个分级会给出它
# ^field `(?<field>[^`]*)` is (?<n_kind>[a-z_ ]+), but (?<n_purpose>[a-z ]+) needs (?<n_need>[a-z_ ]+)$
wrong-field-type = 字段 `{ $field }` 是{ $n_kind }类型，但{ $n_purpose }需要{ $n_need }类型
# ^field `(?<field>[^`]*)`: expected (?<n_expected>.+), got (?<got>.+)$
field-expected = 字段 `{ $field }`：应为{ $n_expected }，实际是 { $got }
# ^(?<subject>`[^`]*`|item \d+) should be (?<n_expected>.+), not (?<v_got>.+)$
should-be = { $subject } 应为{ $n_expected }，而不是{ $v_got }
# ^(?<subject>`[^`]*`|item \d+) cannot be (?<v_got>.+)$
cannot-be = { $subject } 不能是{ $v_got }
# ^(?<subject>`[^`]*`|item \d+) must be (?<value>.+)$
must-be = { $subject } 必须是 { $value }
# ^(?<subject>`[^`]*`|item \d+) (?<v_got>.+) is not in the expected form$
bad-format = { $subject } 的值{ $v_got } 格式不对
# ^(?<subject>`[^`]*`|item \d+) is below the minimum (?<limit>.+)$
below-minimum = { $subject } 低于最小值 { $limit }
# ^(?<subject>`[^`]*`|item \d+) is above the maximum (?<limit>.+)$
above-maximum = { $subject } 超过了最大值 { $limit }
# ^(?<subject>`[^`]*`|item \d+) must have at least (?<limit>\d+) character\(s\)$
min-length = { $subject } 至少要有 { $limit } 个字符
# ^(?<subject>`[^`]*`|item \d+) must have at most (?<limit>\d+) characters$
max-length = { $subject } 最多 { $limit } 个字符
# ^(?<subject>`[^`]*`|item \d+) needs at least (?<limit>\d+) item\(s\)$
min-items = { $subject } 至少需要 { $limit } 项
# ^(?<subject>`[^`]*`|item \d+) takes at most (?<limit>\d+) item\(s\)$
max-items = { $subject } 最多 { $limit } 项
# ^(?<subject>`[^`]*`|item \d+) lists the same item twice$
same-item-twice = { $subject } 重复列出了同一项
# ^(?<subject>`[^`]*`|item \d+) needs at least one entry$
needs-an-entry = { $subject } 至少需要一项
# ^(?<subject>`[^`]*`|the app) needs the key `(?<key>[^`]*)`$
needs-key = { $subject } 缺少键 `{ $key }`
# ^unknown key "(?<key>[^"]*)" in `(?<place>[^`]*)`$
unknown-key-in = `{ $place }` 里有未知的键 "{ $key }"
# ^unknown key "(?<key>[^"]*)" at the top level$
unknown-key-top = 顶层有未知的键 "{ $key }"
# ^key "(?<key>[^"]*)" is not a valid id$
key-not-an-id = 键 "{ $key }" 不是有效的 id
# ^key `(?<key>[^`]*)` appears twice in this mapping$
duplicate-key = 键 `{ $key }` 在同一个映射里出现了两次
# ^a (?<n_what>[A-Za-z ]+) takes exactly one key; `(?<key>[^`]*)` is one too many$
one-key = 一个{ $n_what }只能有一个键；`{ $key }` 多了
# ^a (?<n_what>[A-Za-z ]+) needs one key$
needs-one-key = 一个{ $n_what }需要一个键
# ^two (?<n_things>[A-Za-z ]+) are called `(?<id>[^`]*)`$
two-called = 有两个{ $n_things }都叫 `{ $id }`
# ^the tag `(?<tag>[^`]*)` is not part of the app language$
unsupported-tag = 标签 `{ $tag }` 不属于应用语言
# ^a full-width colon `(?<c>[^`]*)` ends this key$
fullwidth-colon = 这个键以全角冒号 `{ $c }` 结尾
# ^a full-width comma `(?<c>[^`]*)` separates these entries$
fullwidth-comma = 这些条目之间用了全角逗号 `{ $c }`
# ^full-width quotes surround this key$
fullwidth-quotes = 这个键两边是全角引号
# ^a full-width space `(?<c>[^`]*)` is not a YAML space$
fullwidth-space = 全角空格 `{ $c }` 不是 YAML 的空格
# ^message `(?<message>[^`]*)` puts sensitive data \(`(?<fields>[^)]*)`\) into the group chat `(?<channel>[^`]*)`$
sensitive-in-group = 消息 `{ $message }` 把敏感数据（`{ $fields }`）发到了群聊 `{ $channel }`
# ^cannot read the schedule: (?<t_why>.+)$
bad-schedule = 无法读取定时表达式：{ $t_why }
# ^a schedule has (?<want>\d+) fields \(minute hour day month weekday\); this one has (?<got>\d+)$
schedule-fields = 定时表达式有 { $want } 段（分 时 日 月 周），这里有 { $got } 段
# ^cannot read the duration: (?<t_why>.+)$
bad-duration = 无法读取时长：{ $t_why }
# ^"(?<text>[^"]*)" is not a unit of time$
not-a-unit = "{ $text }" 不是时间单位
# ^"(?<text>[^"]*)" is not a unit of time \(did you mean `(?<unit>[^`]*)`\?\)$
not-a-unit-hint = "{ $text }" 不是时间单位（是不是 `{ $unit }`？）
# ^"(?<text>[^"]*)" does not start with a number$
no-number = "{ $text }" 没有以数字开头
# ^"(?<text>[^"]*)" is not a date that exists$
no-such-date = "{ $text }" 不是一个存在的日期
# ^"(?<text>[^"]*)" is not a known time zone$
no-such-zone = "{ $text }" 不是已知的时区
# ^the message template does not compile: (?<why>.+)$
bad-template = 消息模板无法编译：{ $why }
# ^the pattern does not compile: (?<why>.+)$
bad-pattern = 正则表达式无法编译：{ $why }
# ^script error: (?<why>.+)$
script-error = 脚本错误：{ $why }
# ^YAML syntax: (?<why>.+)$
yaml-syntax = YAML 语法错误：{ $why }
# ^the file holds no YAML document$
empty-file = 文件里没有 YAML 文档
# ^the file holds more than one YAML document$
many-documents = 文件里有不止一个 YAML 文档
# ^A choice field needs `(?<key>[^`]*)`$
choice-needs = 选择字段需要 `{ $key }`
# ^`(?<what>[^`]*)` needs `(?<key>[^`]*)`: how many must approve$
needs-count = `{ $what }` 需要 `{ $key }`：需要几人同意
# ^computed fields depend on each other in a circle: (?<chain>.+)$
computed-cycle = 计算字段互相依赖，形成了环：{ $chain }
# ^`(?<key>[^`]*)` cannot go here: a condition is one test$
condition-one-test = `{ $key }` 不能放在这里：一个条件只做一项判断
# ^`(?<key>[^`]*)` needs an operator$
needs-operator = `{ $key }` 缺少比较方式
# ^`(?<a>[^`]*)` and `(?<b>[^`]*)` go together: `[^`]*` names a table field, `[^`]*` tests one row$
rows-together = `{ $a }` 和 `{ $b }` 要一起写：`{ $a }` 指定表格字段，`{ $b }` 判断每一行
# ^a schedule starts this automation, so there is no record: `(?<key>[^`]*)` cannot name a field$
no-record-field = 这个自动化由定时触发，没有记录：`{ $key }` 不能指定字段
# ^a schedule starts this automation, so there is no record for `(?<key>[^`]*)` to act on$
no-record-step = 这个自动化由定时触发，`{ $key }` 没有记录可以处理
# ^`with` takes values from the record, but (?<t_why>.+)$
with-needs-record = `with` 从记录取值，但{ $t_why }
# ^this automation's event names no `target` record$
event-no-target = 这个自动化的事件没有指定 `target` 记录
# ^`(?<key>[^`]*)` does not apply to (?<n_kind>an? [a-z_ ]+) field$
not-applicable = `{ $key }` 不适用于{ $n_kind }字段
# ^`(?<name>[^`]*)` is a name closeloop gives every record$
reserved-name = `{ $name }` 是 closeloop 给每条记录保留的名称
# ^`(?<name>[^`]*)` is not a script file name$
not-a-script = `{ $name }` 不是脚本文件名
# ^event `(?<event>[^`]*)` is public, so its target must create the record it does not find$
public-must-create = 事件 `{ $event }` 是公开的，所以找不到记录时必须新建记录
# ^event `(?<event>[^`]*)` is public, so it cannot update the record it finds$
public-no-update = 事件 `{ $event }` 是公开的，所以不能修改找到的记录
# ^`(?<source>[^`]*)` is protected \(sensitive, or read by some roles only\), but event field `(?<key>[^`]*)` is not$
sensitive-handover = `{ $source }` 是受保护的字段（敏感，或只有部分角色可读），但事件字段 `{ $key }` 不是
# ^the customer's signature must be the last step$
sign-last = 客户签署必须是最后一步
# ^write `(?<a>[^`]*)` or `(?<b>[^`]*)`, not both$
not-both = 写 `{ $a }` 或 `{ $b }`，不要同时写
# ^only one state can be initial$
one-initial = 只能有一个初始状态
# ^the pattern has no counter `(?<counter>[^`]*)`, so ids would repeat$
id-no-counter = 编号格式里没有计数器 `{ $counter }`，编号会重复
# ^this (?<n_what>[A-Za-z ]+) belongs to form `(?<a>[^`]*)`, but the metric counts `(?<b>[^`]*)` records$
metric-form = 这个{ $n_what }属于表单 `{ $a }`，但指标统计的是 `{ $b }` 的记录
# ^this (?<n_what>[A-Za-z ]+) is for form `(?<a>[^`]*)`, but this step runs on `(?<b>[^`]*)` records$
step-form = 这个{ $n_what }属于表单 `{ $a }`，但这一步处理的是 `{ $b }` 的记录
# ^the working day ends before it starts$
day-backwards = 工作时间的结束早于开始
# ^this span starts before the one above it ends$
span-overlap = 这个时段在上一个时段结束之前就开始了

# ^the script file `(?<path>[^`]*)` does not exist$
script-missing = 脚本文件 `{ $path }` 不存在
# ^nothing in the app refers to `(?<path>[^`]*)`, so it never runs$
script-unused = 应用里没有地方用到 `{ $path }`，它永远不会运行

## Help

# ^(?<t_help>.+) \(used at (?<at>[^)]+)\)$
used-at = { $t_help }（用在 { $at }）
# ^type `(?<c>[^`]*)` at the end of the statement$
end-statement = 在语句末尾输入 `{ $c }`
# ^refer to it where it should run \(`(?<example>[^`]*)`\), or delete the file$
refer-or-delete = 在需要运行它的地方引用它（`{ $example }`），或者删掉这个文件
# ^write a value an? (?<n_kind>[a-z_ ]+) field holds, (?<n_what>[a-z ]+) such as `(?<example>[^`]*)`$
value-for-field = 写一个{ $n_kind }字段能存的值：{ $n_what }，例如 `{ $example }`
# ^add at least (?<n>\d+): (?<about>.+)$
add-at-least = 至少加 { $n } 项：{ $about }

# ^did you mean `(?<name>[^`]*)`\?$
did-you-mean = 是不是 `{ $name }`？
# ^did you mean `(?<name>[^`]*)`\? (?<t_more>.+)$
did-you-mean-more = 是不是 `{ $name }`？{ $t_more }
# ^The names this script can use here: (?<names>.+) \(declare others with `(?<key>[^`]*)`\)\.$
script-names = 这里脚本可以用的名字：{ $names }（其他的用 `{ $key }` 声明）。
# ^closeloop writes triggers as `(?<a>[^`]*)`, since some YAML tools read `(?<b>[^`]*)` as true$
trigger-key = closeloop 把触发条件写作 `{ $a }`，因为有些 YAML 工具会把 `{ $b }` 读成 true
# ^expected one of: (?<list>.+)$
one-of = 可选的有：{ $list }
# ^use exactly one of: (?<list>.+)$
exactly-one-of = 只能用其中一个：{ $list }
# ^add one of (?<list>.+)$
add-one-of = 加上其中一个：{ $list }
# ^declare the (?<n_what>[A-Za-z ]+) first$
declare-first = 请先声明这个{ $n_what }
# ^declare it under `(?<key>[^`]*)`$
declare-under = 在 `{ $key }` 下声明它
# ^write `(?<text>[^`]*)`$
write = 写成 `{ $text }`
# ^write `(?<text>[^`]*)` without quotes$
write-no-quotes = 写成 `{ $text }`，不加引号
# ^write `(?<text>[^`]*)`: digits only, without quotes or units$
write-digits = 写成 `{ $text }`：只写数字，不加引号和单位
# ^write `true` for "(?<text>[^"]*)" \(and `false` for no\), without quotes$
write-true = 写 `true` 表示"{ $text }"（`false` 表示否），不加引号
# ^write `false` for "(?<text>[^"]*)" \(and `true` for yes\), without quotes$
write-false = 写 `false` 表示"{ $text }"（`true` 表示是），不加引号
# ^write a date that exists, as `(?<format>[^`]*)` \(`(?<example>[^`]*)`\)$
write-date = 写一个存在的日期，格式为 `{ $format }`（例如 `{ $example }`）
# ^use an IANA name such as `(?<a>[^`]*)` or `(?<b>[^`]*)`$
iana-zone = 用 IANA 时区名，例如 `{ $a }` 或 `{ $b }`
# ^add `(?<key>[^`]*)` to field `(?<field>[^`]*)`$
add-to-field = 给字段 `{ $field }` 加上 `{ $key }`
# ^add `(?<value>[^`]*)` to the options of field `(?<field>[^`]*)`$
add-option = 把 `{ $value }` 加到字段 `{ $field }` 的选项里
# ^add `(?<key>[^`]*)` \((?<about>.+)\)$
add-key = 加上 `{ $key }`（{ $about }）
# ^add `(?<a>[^`]*)` \(or however many\) beside `(?<b>[^`]*)`$
add-count = 在 `{ $b }` 旁边加上 `{ $a }`（人数按需要写）
# ^the first is at line (?<line>\d+); keep one$
first-at = 第一个在第 { $line } 行；只保留一个
# ^the first `(?<key>[^`]*)` is at line (?<line>\d+); keep one$
first-key-at = 第一个 `{ $key }` 在第 { $line } 行；只保留一个
# ^add `create: true` to `target`, or drop `public`$
public-create-help = 在 `target` 里加上 `create: true`，或者去掉 `public`
# ^drop `update: true`, or drop `public`$
public-update-help = 去掉 `update: true`，或者去掉 `public`
# ^mark event field `(?<key>[^`]*)` `sensitive: true`, or hand over a field everyone may read$
handover-help = 把事件字段 `{ $key }` 标为 `sensitive: true`，或者交接一个人人可读的字段
# ^delete the repeated one$
delete-repeated = 删掉重复的那一项
# ^remove the tag; quote the value if it must stay text$
remove-tag = 删掉这个标签；要保留为文本就给值加上引号
# ^check indentation \(spaces, not tabs\) and that every `:` in a plain text is followed by a space or the text is quoted$
check-indentation = 检查缩进（用空格，不用 Tab），普通文本里的 `:` 后面要有空格，或者给文本加上引号
# ^type the ASCII colon `(?<c>[^`]*)` followed by a space; switch the input method to half-width \(半角\) or English for YAML syntax$
type-colon = 输入英文冒号 `{ $c }`，后面加一个空格；写 YAML 的符号时把输入法切换到半角或英文
# ^type the ASCII comma `(?<c>[^`]*)`; switch the input method to half-width \(半角\) or English for YAML syntax$
type-comma = 输入英文逗号 `{ $c }`；写 YAML 的符号时把输入法切换到半角或英文
# ^write the key without quotes; switch the input method to half-width \(半角\) or English for YAML syntax$
type-unquoted = 键不要加引号；写 YAML 的符号时把输入法切换到半角或英文
# ^type ASCII spaces \(half-width\); switch the input method to half-width \(半角\) or English for YAML syntax$
type-spaces = 输入半角空格；写 YAML 的符号时把输入法切换到半角或英文
# ^everyone in the group reads it: take `(?<fields>[^`]*)` out, or send this message to one person \(sms or email\)$
group-reads = 群里每个人都能看到：去掉 `{ $fields }`，或者把这条消息单独发给一个人（短信或邮件）
# ^five fields: minute hour day-of-month month day-of-week, e\.g\. `(?<example>[^`]*)` for 09:00 on weekdays$
five-fields = 五段：分 时 日 月 周，例如 `{ $example }` 表示工作日 09:00
# ^patterns use the linear-time `(?<name>[^`]*)` syntax: no look-around, no back-references, bounded repetition$
linear-regex = 正则用线性时间的 `{ $name }` 语法：不支持环视和反向引用，重复次数要有上限
# ^placeholders are written `(?<a>[^`]*)`; blocks as `(?<b>[^`]*)`$
placeholders = 占位符写作 `{ $a }`；代码块写作 `{ $b }`
# ^closeloop reads YAML 1\.2, where `(?<text>[^`]*)` is text; write `(?<a>[^`]*)` or `(?<b>[^`]*)`$
yaml-12 = closeloop 按 YAML 1.2 读取，`{ $text }` 是文本；写 `{ $a }` 或 `{ $b }`
# ^one of these fields must be entered, not computed$
enter-one = 其中一个字段必须由人填写，不能是计算字段
# ^combine several tests with `(?<a>[^`]*)` or `(?<b>[^`]*)`, one test per list item$
combine-tests = 多个判断用 `{ $a }` 或 `{ $b }` 组合，列表里每项一个判断
# ^rename the field; reserved: (?<list>.+)$
rename-field = 给字段改个名字；保留的名字有：{ $list }
# ^remove `(?<key>[^`]*)`, or change the field's type$
remove-option = 删掉 `{ $key }`，或者改字段类型
# ^name a field of type (?<n_kind>[a-z_ ]+): (?<list>.+)$
name-field-of-type = 指定一个{ $n_kind }类型的字段：{ $list }
# ^start from a bundled template: lead-followup, quote-approval or customer-success$
start-from-template = 从内置模板开始：lead-followup、quote-approval 或 customer-success
# ^an app is one document: remove the `(?<sep>[^`]*)` line, or move the second app to its own folder$
one-document = 一个应用就是一个文档：删掉 `{ $sep }` 这一行，或者把第二个应用放到它自己的目录
# ^YAML merge keys \(`(?<key>[^`]*)`\) are not supported; write the keys out$
no-merge-keys = 不支持 YAML 合并键（`{ $key }`）；请把键逐个写出来
# ^scripts cannot run text as code; write the logic out, or use a lookup$
no-eval = 脚本不能把文本当代码运行；请把逻辑写出来，或者用查找
# ^something is missing before this: a value, an operand, or a closing bracket$
missing-before = 这里前面少了东西：一个值、一个运算数，或一个右括号
# ^an expression is one value: drop the `(?<a>[^`]*)` \(statements need a script file or a `(?<b>[^`]*)` block\)$
expression-one-value = 表达式只能是一个值：去掉 `{ $a }`（语句要写在脚本文件或 `{ $b }` 块里）
# ^`(?<text>[^`]*)` is the label of (?<n_what>[A-Za-z ]+) `(?<id>[^`]*)`; here the app needs its id: write `[^`]*`$
label-not-id = `{ $text }` 是{ $n_what } `{ $id }` 的显示名称；这里要写它的 id：`{ $id }`
# ^use literal text with (?<list>.+) and one `(?<counter>[^`]*)`, e\.g\. `(?<example>[^`]*)`$
id-pattern-help = 用文字加上 { $list } 和一个 `{ $counter }`，例如 `{ $example }`
# ^move this step to the end of `(?<key>[^`]*)`: the customer signs what every approver passed$
sign-at-end = 把这一步移到 `{ $key }` 的最后：客户签署的是每位审批人都通过的内容
# ^the record's state is not a field: ask for it with `(?<a>[^`]*)` \(its states: (?<list>.+)\)$
state-not-field = 记录的状态不是字段：用 `{ $a }` 判断（它的状态有：{ $list }）
# ^keep `(?<a>[^`]*)` for a moment after the anchor \(`(?<b>[^`]*)`\), `(?<c>[^`]*)` for one before it; delete the other$
after-or-before = `{ $a }` 表示锚点之后（`{ $b }`），`{ $c }` 表示锚点之前；删掉另一个
# ^keep `(?<key>[^`]*)` on the state new records start in, and delete it here$
keep-initial = 只在新记录开始时的状态上保留 `{ $key }`，删掉这里的
# ^write the times on a 24-hour clock, start before end: `(?<example>[^`]*)`$
day-times = 时间用 24 小时制，开始早于结束：`{ $example }`
# ^list the spans of a day in order, each starting after the last ends \(a break between\)$
spans-in-order = 按顺序列出一天的时段，每段在上一段结束后开始（中间是休息）
# ^to change records on a schedule, give the timer a form and an anchor \(`(?<example>[^`]*)`\)$
timer-anchor = 要定时修改记录，请给定时器指定表单和锚点（`{ $example }`）
# ^use a `(?<a>[^`]*)` or a record trigger, or give the event a `(?<b>[^`]*)`$
record-trigger = 用 `{ $a }` 或记录触发，或者给事件加上 `{ $b }`
# ^name a SOP of form `(?<form>[^`]*)`, or count `(?<other>[^`]*)` records \(`(?<example>[^`]*)`\)$
metric-sop = 指定表单 `{ $form }` 的 SOP，或者统计 `{ $other }` 的记录（`{ $example }`）
# ^script files are `(?<pattern>[^`]*)`, NAME made of letters, digits, `(?<a>[^`]*)` and `(?<b>[^`]*)`$
script-file-names = 脚本文件写作 `{ $pattern }`，NAME 由字母、数字、`{ $a }` 和 `{ $b }` 组成

## Nouns

noun-event = 事件
noun-form = 表单
noun-field = 字段
noun-fields = 字段
noun-forms = 表单
noun-states = 状态
noun-actions = 动作
noun-state = 状态
noun-action = 动作
noun-role = 角色
noun-board = 看板
noun-channel = 通道
noun-message = 消息
noun-assignment-rule = 分配规则
noun-sop = SOP
noun-task = 任务
noun-approval-chain = 审批链
noun-score = 评分
noun-grade = 分级
noun-metric = 指标
noun-calendar = 日历
noun-script = 脚本
noun-member = 成员
noun-step = 步骤
noun-trigger = 触发条件
noun-recipient = 收件人
noun-a-recipient = 收件人
noun-a-time-anchor = 时间锚点
noun-automation = 自动化
noun-text = 文本
noun-long-text = 长文本
noun-integer = 整数
noun-an-integer = 整数
noun-a-text = 文本
noun-a-long-text = 长文本
noun-a-bool = 是非
noun-a-date = 日期
noun-date = 日期
noun-datetime = 日期时间
noun-date-or-datetime = 日期或日期时间
noun-a-whole-number = 整数
noun-a-number = 数字
noun-true-or-false = true 或 false
noun-a-list = 列表
noun-a-mapping-key-value = 映射（键: 值）
noun-a-value = 一个值
noun-empty = 空
noun-a-label = 显示文字
noun-a-duration = 时长
noun-another-form = 别的写法
noun-money = 金额
noun-member-field = 成员
noun-link = 关联
noun-choice = 选择
noun-bool = 是非
noun-table = 表格
noun-phone = 电话
noun-email = 邮箱

## Values

value-the-number = 数字 { $n }
value-empty = 空值
value-a-list = 一个列表
value-a-mapping = 一个映射

## What the command line says

# ^installed (?<app>\S+) revision (?<rev>\d+) \(forms: (?<forms>.*)\)$
cli-installed = 已安装 { $app } 第 { $rev } 版（表单：{ $forms }）
# ^sample data: (?<file>.+): (?<rows>\d+) rows$
cli-sample-data = 示例数据：{ $file }：{ $rows } 行
# ^forced: (?<what>.+)$
cli-forced = 已强制安装：{ $what }
# ^(?<rows>\d+) members: (?<new>\d+) new, (?<changed>\d+) changed, (?<same>\d+) unchanged$
cli-members = { $rows } 名成员：新增 { $new }，修改 { $changed }，未变 { $same }
# ^warning\[(?<code>[A-Z_]+)\]: (?<t_text>.+)$
cli-warning = 警告[{ $code }]：{ $t_text }
# ^= help: (?<t_help>.+)$
cli-help = = 建议：{ $t_help }
# ^channel `(?<channel>[^`]*)` \((?<kind>[^)]*)\) reaches members by their (?<column>[a-z_]+); (?<n>\d+) active member\(s\) have none: (?<who>.+)$
member-unreachable = 通道 `{ $channel }`（{ $kind }）按成员的 { $column } 送达；有 { $n } 名在职成员没有：{ $who }
# ^there is no form `(?<form>[^`]*)`; no app is installed yet: install one with `(?<cmd>[^`]*)` \(see `(?<see>[^`]*)`\)$
no-app-yet = 没有表单 `{ $form }`；还没有安装任何应用：用 `{ $cmd }` 安装一个（参见 `{ $see }`）
# ^there is no form `(?<form>[^`]*)` \(did you mean `(?<name>[^`]*)`\?\)$
no-form-hint = 没有表单 `{ $form }`（是不是 `{ $name }`？）
# ^there is no form `(?<form>[^`]*)`$
no-form = 没有表单 `{ $form }`
# ^(?<form>[a-z][a-z0-9_]*) (?<id>\S+) does not exist$
no-record = { $form } { $id } 不存在
# ^`(?<member>[^`]*)` is not a member of the team; load the team with `(?<cmd>[^`]*)`$
not-a-member = `{ $member }` 不是团队成员；用 `{ $cmd }` 导入团队
# ^`(?<member>[^`]*)` is not a member of the team$
not-a-member-plain = `{ $member }` 不是团队成员
# ^member `(?<member>[^`]*)` is not active$
member-inactive = 成员 `{ $member }` 已停用
# ^(?<n>\d+) problem\(s\) with the input; nothing was written$
input-problems = 输入有 { $n } 个问题，什么都没有写入
# ^(?<n>\d+) problem\(s\) in the file; nothing was imported$
file-problems = 文件有 { $n } 个问题，什么都没有导入
# ^(?<form>[a-z][a-z0-9_]*) (?<id>\S+) was changed by someone else meanwhile; read it again and retry$
changed-meanwhile = { $form } { $id } 已被别人修改；请重新读取后再试
# ^the app has (?<n>\d+) error\(s\)$
app-errors = 应用有 { $n } 个错误
# ^installing this version would orphan stored data; fix the app or install with --force$
would-orphan = 安装这个版本会让已存的数据失去归属；请修改应用，或者加 --force 安装

## A record's field problems, as the command line lists them (`  phone: 联系人电话: … [WRONG_TYPE]`)

# ^(?<path>[a-z][a-z0-9_.\[\]]*): (?<t_problem>.+) \[(?<code>[A-Z_]+)\]$
cli-field-problem = { $path }：{ $t_problem } [{ $code }]
# ^(?<name>[^:"]+) is required$
field-required = { $name }：必填
# ^(?<name>[^:"]+) is required to (?<action>.+)$
field-required-for = { $name }：{ $action }时必填
# ^(?<name>[^:"]+): "(?<text>.*)" is not a phone number$
field-not-phone = { $name }："{ $text }" 不是有效的电话号码
# ^(?<name>[^:"]+): "(?<text>.*)" is not an email address$
field-not-email = { $name }："{ $text }" 不是有效的邮箱地址
# ^(?<name>[^:"]+): "(?<text>.*)" is not a date \(YYYY-MM-DD\)$
field-not-date = { $name }："{ $text }" 不是日期（YYYY-MM-DD）
# ^(?<name>[^:"]+): "(?<text>.*)" is not one of (?<options>.+)$
field-not-option = { $name }："{ $text }" 不是可选值之一：{ $options }
# ^(?<name>[^:"]+): "(?<text>.*)" does not have the required form$
field-pattern = { $name }："{ $text }" 格式不符合要求
# ^(?<name>[^:"]+): at least (?<min>\S+)$
field-at-least = { $name }：不能小于 { $min }
# ^(?<name>[^:"]+): at most (?<max>\S+)$
field-at-most = { $name }：不能大于 { $max }
# ^(?<name>[^:"]+): expected (?<n_what>[a-z ]+), got (?<got>.+)$
field-expected-got = { $name }：应为{ $n_what }，实际是 { $got }

